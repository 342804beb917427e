"""Selection: turn a similarity matrix into a list of ancestry layers (the learngene).

Independent of how the matrix was computed, so the UI can re-score and re-select a saved result.
Every matrix follows one convention: rows are ancestry layers and a higher value means "more
learngene" (more similar, more weight, more stable).

Presets reproduce published choices:
- `heur`: the last 3 layers (Heur-LG, Wang et al., AAAI 2022).
- `auto-paper`: Auto-LG (Wang et al., 2023): ViT-S (12 blocks) → first 2 + last 4 blocks;
  ResNet-18 → the blocks of the first and the last stage; VGG-16 (13 convs) → 6 units taken from both
  ends (3 + 3). Shallower networks get the same fractions, rounded, at least one layer per end.
- `front-k`, `middle-k`, `last-k`: k layers from the front, the centre, or the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from learngene.errors import ConfigError

ScoreRule = Literal["row_max", "row_mean", "diagonal"]
Family = Literal["vit", "resnet", "vgg"]
SCORE_RULES: tuple[str, ...] = ("row_max", "row_mean", "diagonal")
PRESETS: tuple[str, ...] = ("heur", "auto-paper", "front-k", "middle-k", "last-k")

# Published reference depths of the Auto-LG choices (ViT-S blocks, VGG-16 conv units).
_VIT_REF, _VIT_FRONT, _VIT_BACK = 12, 2, 4
_VGG_REF, _VGG_FRONT, _VGG_BACK = 13, 3, 3


def diagonal_index(m: int, n_rows: int, n_cols: int) -> int:
    """Column on the depth-proportional diagonal for row `m` of an (n_rows, n_cols) matrix."""
    return min(n_cols - 1, (m * n_cols) // n_rows)


def layer_scores(matrix: Sequence[Sequence[float]] | np.ndarray, rule: ScoreRule = "row_max") -> list[float]:
    """Score each ancestry layer (row) of a similarity matrix.

    Args:
        matrix: (rows, cols) similarity; NaN/None entries are ignored.
        rule: `row_max` (best match of the layer), `row_mean` (average over columns), or `diagonal`
            (the entry on the depth-proportional diagonal: row m ↔ column ⌊m · cols / rows⌋, so a
            rectangular ancestry × half-depth matrix pairs layers by relative depth).
    """
    a = np.asarray(matrix, dtype=float)
    if a.ndim != 2 or a.size == 0:
        raise ConfigError(f"a similarity matrix must be 2-D and non-empty, got shape {a.shape}")
    if rule not in SCORE_RULES:
        raise ConfigError(f"unknown score rule {rule!r}; choose one of {', '.join(SCORE_RULES)}")
    rows, cols = a.shape
    out = []
    for m in range(rows):
        row = a[m][np.isfinite(a[m])]
        if rule == "diagonal":
            v = a[m, diagonal_index(m, rows, cols)]
            out.append(float(v) if np.isfinite(v) else float("nan"))
        elif row.size == 0:
            out.append(float("nan"))
        else:
            out.append(float(row.max() if rule == "row_max" else row.mean()))
    return out


def _check_k(k: int, n: int, what: str) -> None:
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ConfigError(f"{what}: k must be between 1 and the number of layers ({n}), got {k!r}")


def select_layers(scores: Sequence[float], k: int, contiguous: bool = False) -> list[int]:
    """Indices (ascending) of the k best-scoring layers.

    Args:
        scores: one score per ancestry layer; higher is better; NaN counts as the worst.
        k: how many layers.
        contiguous: take the best window of k consecutive layers (largest score sum) instead.
    Ties go to the shallower layer.
    """
    s = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    _check_k(k, len(s), "select_layers")
    if contiguous:
        ok = np.isfinite(s)
        floor = s[ok].min() - 1.0 if ok.any() else 0.0  # NaN scores count below every real one
        sums = np.convolve(np.where(ok, s, floor), np.ones(k), mode="valid")  # (n - k + 1,)
        start = int(np.argmax(sums))
        return list(range(start, start + k))
    order = sorted(range(len(s)), key=lambda i: (-s[i], i))
    return sorted(order[:k])


def _scaled(count: int, n: int, ref: int) -> int:
    """`count` of a `ref`-deep net scaled to an `n`-deep one (only ever scaled down)."""
    return count if n >= ref else max(1, round(count * n / ref))


def _stages(names: Sequence[str] | None, n_layers: int) -> list[list[int]]:
    """Group ResNet layer indices by stage: by the name before its last '.', else 4 equal stages."""
    if names is not None:
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            groups.setdefault(name.rsplit(".", 1)[0] if "." in name else name, []).append(i)
        return list(groups.values())
    size = math.ceil(n_layers / 4)
    return [list(range(s, min(s + size, n_layers))) for s in range(0, n_layers, size)]


def _auto_paper(n: int, family: str, names: Sequence[str] | None) -> list[int]:
    if family == "resnet":
        stages = _stages(names, n)
        return sorted(set(stages[0]) | set(stages[-1]))
    vgg = family == "vgg"
    ref, front, back = (_VGG_REF, _VGG_FRONT, _VGG_BACK) if vgg else (_VIT_REF, _VIT_FRONT, _VIT_BACK)
    if n < 2:
        raise ConfigError(f"auto-paper needs at least 2 layers, the model has {n}")
    f, b = _scaled(front, n, ref), _scaled(back, n, ref)
    while f + b > n - (n >= 4):  # keep at least one middle layer for a descendant's random slots
        if b >= f and b > 1:
            b -= 1
        elif f > 1:
            f -= 1
        else:
            break
    return sorted(set(range(f)) | set(range(n - b, n)))


def select_preset(name: str, n_layers: int, family: Family | str = "vit",
                  names: Sequence[str] | None = None) -> list[int]:
    """Layer indices of a named preset.

    Args:
        name: `heur`, `auto-paper`, or `front-k` / `middle-k` / `last-k` with k a number (`last-3`).
        n_layers: number of integral layers of the ancestry.
        family: `vit`, `resnet` or `vgg` (used by `auto-paper`).
        names: the ancestry's layer names; lets `auto-paper` find ResNet stages ("layer1.0" → stage
            "layer1"); without them a ResNet is split into 4 equal stages.
    """
    if n_layers < 1:
        raise ConfigError(f"the model has no integral layers (n_layers={n_layers})")
    if name == "heur":
        _check_k(3, n_layers, "heur (the last 3 layers)")
        return list(range(n_layers - 3, n_layers))
    if name == "auto-paper":
        if family not in ("vit", "resnet", "vgg"):
            raise ConfigError(f"auto-paper knows the families vit, resnet and vgg, not {family!r}")
        return _auto_paper(n_layers, family, names)
    match = re.fullmatch(r"(front|middle|last)-(\d+)", name)
    if match is None:
        raise ConfigError(f"unknown selection preset {name!r}; choose heur, auto-paper, front-K, middle-K "
                          "or last-K (e.g. last-3)")
    where, k = match.group(1), int(match.group(2))
    _check_k(k, n_layers, name)
    start = {"front": 0, "middle": (n_layers - k) // 2, "last": n_layers - k}[where]
    return list(range(start, start + k))
