"""Numbers a person types, checked on the server: bounds, whole numbers, grids of values.

Streamlit's number input checks its bounds in the browser: a value out of range turns the field red
but is never sent, so the page went on with the last valid value (N-way 0 trained 5-way), and an
integer field reads "1e9" as 1. The studio's number fields therefore send whatever is typed (float
fields without browser bounds) and every value is checked here; a problem is shown next to its field
and keeps the start button disabled. No Streamlit here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 1e4 else f"{v:g}"


@dataclass(frozen=True)
class Field:
    """A number field: its label, bounds, and whether it takes whole numbers only.

    Attributes:
        above: `low` itself is refused (e.g. a learning rate must be more than 0).
        auto_zero: 0 is also accepted and means "automatic" (optional settings).
    """

    label: str
    low: float
    high: float
    integer: bool = False
    above: bool = False
    auto_zero: bool = False
    step: float | None = None  # of the field's +/- buttons (default: 1 for whole numbers, else 0.01)

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable, in words; None when it is."""
        if value is None or value == "":
            return f"{self.label}: type a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.label}: {value!r} is not a number"
        if not math.isfinite(value):
            return f"{self.label}: {value} is not a finite number"
        if self.auto_zero and value == 0:
            return None
        if self.integer and not float(value).is_integer():
            return f"{self.label} must be a whole number, not {value:g}"
        if self.above and value <= self.low:
            return f"{self.label} must be more than {_num(self.low)}, not {_num(value)}"
        if value < self.low:
            return f"{self.label} must be at least {_num(self.low)}, not {_num(value)}"
        if value > self.high:
            return f"{self.label} must be at most {_num(self.high)}, not {_num(value)}"
        return None

    def cast(self, value: Any) -> int | float:
        return int(value) if self.integer else float(value)

    @property
    def increment(self) -> float:
        return float(self.step) if self.step else (1.0 if self.integer else 0.01)


# The Train page's task and training settings (the bounds the forms had, now checked here).
def task_fields(novel_classes: int = 20) -> dict[str, Field]:
    return {
        "n_way": Field("N-way", 2, max(2, novel_classes), integer=True),
        "k_shot": Field("K-shot", 1, 500, integer=True),
        "tasks": Field("tasks", 1, 100, integer=True),
        "epochs": Field("epochs", 1, 1000, integer=True),
        "lr": Field("learning rate", 0, 10, above=True, step=1e-4),
        "weight_decay": Field("weight decay", 0, 10),
        "batch_size": Field("batch size", 1, 4096, integer=True),
        "seed": Field("seed", 0, 2**31 - 1, integer=True),
    }


def check(fields: dict[str, Field], values: dict[str, Any]) -> dict[str, str]:
    """The problem of every field whose value is not acceptable, by field name."""
    out = {}
    for name, f in fields.items():
        problem = f.problem(values.get(name))
        if problem:
            out[name] = problem
    return out


def parse_grid(text: str, f: Field) -> list[int | float]:
    """'1e-4, 3e-4,1e-3' -> [0.0001, 0.0003, 0.001], every entry checked against `f`.

    Raises:
        ValueError: naming the first entry that is not a number or is out of bounds, or an empty grid.
    """
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{f.label}: {part!r} is not a number") from None
        problem = f.problem(value)
        if problem:
            raise ValueError(problem)
        out.append(f.cast(value))
    if not out:
        raise ValueError(f"{f.label}: the grid is empty; type one or more values separated by commas")
    return sorted(set(out))
