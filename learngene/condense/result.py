"""`SimilarityResult`: one condensing run's matrix, layer scores and chosen learngene layers.

Saved as strict JSON (atomically), so the UI and later commands (inherit) can read it back and
re-select layers with `learngene.condense.select` without recomputing anything.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from learngene.errors import CheckpointError, check_file
from learngene.runlog import atomic_write_json

Method = Literal["auto", "cka", "gradient", "weights"]
METHODS: tuple[str, ...] = ("auto", "cka", "gradient", "weights")
FORMAT = "learngene.similarity/1"


@dataclass
class SimilarityResult:
    """The outcome of one condensing run.

    Attributes:
        method: `auto`, `cka`, `gradient` or `weights`.
        matrix: (rows, cols) similarity, higher = more "learngene" for every method.
        row_names: the ancestry's integral layer names (`layer_view(model).names`).
        col_names: pseudo-descendant layer names, `epoch k` (gradient) or `cosine` (weights).
        scores: one score per ancestry layer (from `selection["rule"]`).
        selected: the chosen ancestry layer indices, ascending.
        selection: how `selected` was chosen, e.g. {"rule": "row_max", "how": "top-k", "k": 4}.
        settings: every setting that produced the matrix (seeds, images, token treatment, ...).
        ancestry: {"arch", "path", "sha256", "num_classes", "overrides"} of the ancestry model.
        elapsed_s: wall-clock seconds of the computation.
        created: ISO time stamp.
        extras: per-method diagnostics (pseudo-descendant accuracy, raw activity, weight change, ...).
    """

    method: str
    matrix: list[list[float]]
    row_names: list[str]
    col_names: list[str]
    scores: list[float]
    selected: list[int]
    selection: dict[str, Any]
    settings: dict[str, Any]
    ancestry: dict[str, Any]
    elapsed_s: float
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = [[_num(v) for v in row] for row in np.asarray(self.matrix, dtype=float).tolist()]
        self.scores = [_num(v) for v in self.scores]
        self.selected = [int(i) for i in self.selected]
        self.validate()

    def validate(self) -> None:
        """Check shapes and indices; raise `CheckpointError` naming what is inconsistent."""
        rows, cols = len(self.matrix), len(self.matrix[0]) if self.matrix else 0
        problems = []
        if self.method not in METHODS:
            problems.append(f"unknown method {self.method!r} (known: {', '.join(METHODS)})")
        if rows == 0 or cols == 0 or any(len(r) != cols for r in self.matrix):
            problems.append("the matrix must be a non-empty rectangle")
        if not all(isinstance(n, str) for n in (*self.row_names, *self.col_names)):
            problems.append("row and column names must be strings")
        if len(self.row_names) != rows:
            problems.append(f"{len(self.row_names)} row names for {rows} matrix rows")
        if len(self.col_names) != cols:
            problems.append(f"{len(self.col_names)} column names for {cols} matrix columns")
        if len(self.scores) != rows:
            problems.append(f"{len(self.scores)} scores for {rows} ancestry layers")
        if any(not 0 <= i < rows for i in self.selected) or len(set(self.selected)) != len(self.selected):
            problems.append(f"selected layers {self.selected} are not distinct indices in 0..{rows - 1}")
        if problems:
            raise CheckpointError("invalid similarity result: " + "; ".join(problems))

    @property
    def array(self) -> np.ndarray:
        """The matrix as a float array (NaN where a value is missing)."""
        return np.array([[np.nan if v is None else v for v in row] for row in self.matrix], dtype=float)

    @property
    def selected_names(self) -> list[str]:
        return [self.row_names[i] for i in self.selected]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (atomically); returns the path."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "the similarity result") -> SimilarityResult:
        """Strict inverse of `to_dict`: unknown, missing or mistyped keys raise `CheckpointError`."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source} must hold a JSON object, got {type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt != FORMAT:
            raise CheckpointError(f"{source} has format {fmt!r}, expected {FORMAT!r}; "
                                  "is it a file written by `python -m learngene condense`?")
        known = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - known), sorted(known - set(data) - {"created", "extras"})
        if unknown or missing:
            raise CheckpointError(f"{source} has unknown keys {unknown} / lacks keys {missing}")
        for key, kind in (("matrix", list), ("row_names", list), ("col_names", list), ("scores", list),
                          ("selected", list), ("selection", dict), ("settings", dict), ("ancestry", dict)):
            if not isinstance(data[key], kind):
                raise CheckpointError(f"{source}: '{key}' must be a JSON {kind.__name__}")
        try:
            return cls(**data)
        except (TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, CheckpointError):
                raise CheckpointError(f"{source}: {exc}") from exc
            raise CheckpointError(f"{source} is malformed: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> SimilarityResult:
        """Read a result written by `save`; raises `CheckpointError` with the path on any problem."""
        path = check_file(path, "similarity result", hint="; run `python -m learngene condense --out PATH` first")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:  # not UTF-8, not JSON, too deep, too many digits
            raise CheckpointError(f"cannot read similarity result {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    def summary(self, max_cols: int = 12) -> str:
        """A plain-text table: matrix rows with their score, selected layers marked with '*'.

        More than `max_cols` columns are shown as `max_cols` evenly spaced ones.
        """
        cols = list(range(len(self.col_names)))
        if len(cols) > max_cols:
            cols = sorted({round(i * (len(cols) - 1) / (max_cols - 1)) for i in range(max_cols)})
        heads = _short_names([self.col_names[c] for c in cols])
        width = min(10, max(6, *(len(h) for h in heads)))
        lines = [" " * 16 + "".join(f"{h[-width:]:>{width + 1}}" for h in heads) + f"{'score':>{width + 2}}"]
        for i, (name, row) in enumerate(zip(self.row_names, self.matrix, strict=True)):
            cells = "".join(f"{_fmt(row[c]):>{width + 1}}" for c in cols)
            mark = "*" if i in self.selected else " "
            lines.append(f"{mark} {name[-13:]:<13} {cells}{_fmt(self.scores[i]):>{width + 2}}")
        if len(cols) < len(self.col_names):
            lines.append(f"({len(cols)} of {len(self.col_names)} columns shown)")
        return "\n".join(lines)


def _short_names(names: list[str]) -> list[str]:
    """Drop a common prefix that ends at a separator ('blocks.0', 'blocks.1' → '0', '1')."""
    if len(names) < 2:
        return names
    prefix = os.path.commonprefix(names)
    cut = max(prefix.rfind("."), prefix.rfind(" ")) + 1
    return [n[cut:] for n in names]


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
