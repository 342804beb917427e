"""Core data types: the class split, the in-memory image set, and input normalisation.

Images are kept as uint8 tensors (N, 3, H, W) everywhere; `normalize` is the one place they become
float model input, so every model in the project sees the same preprocessing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from learngene.errors import ConfigError, DataError

Part = Literal["base", "open", "novel"]
PARTS: tuple[str, ...] = ("base", "open", "novel")

# Fixed per-channel statistics used by `normalize`: uint8 [0, 255] -> roughly [-2, 2].
MEAN: float = 0.5
STD: float = 0.25

_PART_ALIASES = {"base": "base", "open": "open_world", "open_world": "open_world", "novel": "novel"}


def _int_tuple(values: Iterable[Any], what: str) -> tuple[int, ...]:
    """Convert class ids to a tuple of Python ints, rejecting non-integers."""
    out = []
    for v in values:
        try:
            if isinstance(v, bool):
                raise TypeError
            out.append(operator.index(v))
        except TypeError:
            raise DataError(f"class split part '{what}' must hold integer class ids, got {v!r}") from None
    return tuple(out)


@dataclass(frozen=True)
class ClassSplit:
    """Disjoint class-id sets: base (ancestry), open-world (pseudo-descendant), novel (descendant).

    Attributes:
        base: global class ids used to train the ancestry model.
        open_world: global class ids for the pseudo-descendant task.
        novel: global class ids from which descendant tasks are sampled.
    """

    base: tuple[int, ...]
    open_world: tuple[int, ...]
    novel: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in ("base", "open_world", "novel"):
            object.__setattr__(self, name, _int_tuple(getattr(self, name), name))

    def classes(self, part: Part) -> tuple[int, ...]:
        """Return the class ids of `part` ("base", "open" or "novel"; "open_world" is accepted)."""
        attr = _PART_ALIASES.get(str(part))
        if attr is None:
            raise ConfigError(f"unknown split part {part!r}; choose one of {', '.join(PARTS)}")
        return getattr(self, attr)

    def validate(self, num_classes: int) -> None:
        """Raise DataError if a part is empty, an id is out of range, or parts overlap."""
        seen: dict[int, str] = {}
        for name in ("base", "open_world", "novel"):
            ids = getattr(self, name)
            if not ids:
                raise DataError(f"class split part '{name}' is empty; every part needs at least one class")
            for c in ids:
                if not 0 <= c < num_classes:
                    raise DataError(
                        f"class id {c} in split part '{name}' is out of range for {num_classes} classes"
                    )
                if c in seen:
                    raise DataError(
                        f"class id {c} appears in both split parts '{seen[c]}' and '{name}'; "
                        "parts must be disjoint"
                    )
                seen[c] = name

    def sizes(self) -> dict[str, int]:
        """Number of classes per part, keyed "base", "open", "novel"."""
        return {"base": len(self.base), "open": len(self.open_world), "novel": len(self.novel)}

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready form: {"base": [...], "open_world": [...], "novel": [...]}."""
        return {"base": list(self.base), "open_world": list(self.open_world), "novel": list(self.novel)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Iterable[int]]) -> ClassSplit:
        """Inverse of `to_dict` (the key "open" is accepted for "open_world")."""
        if not isinstance(d, Mapping):
            raise DataError(
                f"a class split must be a mapping with base/open_world/novel, got {type(d).__name__}"
            )
        open_key = "open_world" if "open_world" in d else "open"
        missing = [k for k in ("base", open_key, "novel") if k not in d]
        if missing:
            raise DataError(f"class split is missing key(s) {missing}; expected base, open_world, novel")
        return cls(base=tuple(d["base"]), open_world=tuple(d[open_key]), novel=tuple(d["novel"]))


@dataclass
class ImageSet:
    """A labelled image data set: its labels in memory, its images in memory or streamed.

    Attributes:
        name: data set name, e.g. "shapes" or "cifar100".
        images: uint8 tensor (N, 3, H, W), or for a streamed set a `learngene.data.stream.LazyImages`
            with the same shape that reads images when indexed (see `streamed`).
        labels: int64 tensor (N,) of global class ids in [0, num_classes).
        class_names: human-readable name of each global class id.
        split: base / open-world / novel class split.
        skipped: number of source files that could not be decoded and were left out.
        meta: JSON-ready extra information (source, seed, generation time, ...).
        reader: optional lazy reader of the same images (e.g. the cache file an in-memory-mapped `images`
            comes from), which `take` uses so that only the images asked for are read. Setting `images`
            drops it.
    """

    name: str
    images: Any  # torch.Tensor | LazyImages
    labels: torch.Tensor
    class_names: list[str]
    split: ClassSplit
    skipped: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    reader: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise DataError(
                f"ImageSet images must be uint8 (N, 3, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"labels shape {tuple(self.labels.shape)} does not match {self.images.shape[0]} images"
            )
        if self.reader is not None and tuple(self.reader.shape) != tuple(self.images.shape):
            raise DataError(f"the reader's shape {tuple(self.reader.shape)} differs from the images' "
                            f"{tuple(self.images.shape)}")
        self.labels = self.labels.long()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "images" and "reader" in self.__dict__:
            object.__setattr__(self, "reader", None)  # new images: the old file no longer holds them
        object.__setattr__(self, name, value)

    @property
    def streamed(self) -> bool:
        """Whether the images are read on demand (a `LazyImages`) rather than held in memory."""
        return not isinstance(self.images, torch.Tensor)

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at `indices` as a new uint8 tensor (k, 3, H, W), reading only them: from `reader` when
        there is one, else by indexing `images` (a streamed set decodes or reads just these)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        source = self.reader if self.reader is not None else self.images
        return source[idx]

    def subset_images(self, indices: torch.Tensor) -> Any:
        """The images at `indices`: a lazy view for a streamed set (nothing read yet), else a tensor."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.images.subset(idx) if self.streamed else self.images[idx]

    @property
    def num_classes(self) -> int:
        """Number of classes (length of `class_names`)."""
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        """Side length in pixels (images are square)."""
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def indices_of(self, classes: Iterable[int]) -> torch.Tensor:
        """Ascending indices (LongTensor) of the images whose label is in `classes`."""
        ids = torch.as_tensor(list(classes), dtype=torch.long)
        mask = torch.isin(self.labels, ids)
        return mask.nonzero().flatten()

    def per_class_counts(self) -> dict[int, int]:
        """Number of images of every class id (0 for classes without images)."""
        counts = torch.bincount(self.labels, minlength=self.num_classes)
        return {c: int(n) for c, n in enumerate(counts.tolist())}

    def summary(self) -> dict[str, Any]:
        """A small JSON-ready description (for the CLI and the UI)."""
        counts = list(self.per_class_counts().values())
        return {
            "name": self.name,
            "num_images": len(self),
            "num_classes": self.num_classes,
            "image_size": self.image_size,
            "split_sizes": self.split.sizes(),
            "images_per_class": {"min": min(counts, default=0), "max": max(counts, default=0)},
            "skipped": self.skipped,
            "streamed": self.streamed,
        }


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Turn uint8 images (..., 3, H, W) into float32 model input.

    Every channel uses the fixed statistics `MEAN` = 0.5 and `STD` = 0.25 on the [0, 1] scale, i.e.
    `(x / 255 - 0.5) / 0.25`, so inputs lie in [-2, 2]. Fixed values keep the learngene independent of
    any one data set's statistics. Works on any device.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"normalize expects a uint8 image tensor (..., 3, H, W), got {got}")
    return (images.float() / 255.0 - MEAN) / STD


def preview_grid(ds: ImageSet, classes: Sequence[int], per_class: int, pad: int = 2) -> torch.Tensor:
    """uint8 (3, H, W) grid on white: one row per class with its first `per_class` images."""
    s = ds.image_size
    grid = torch.full(
        (3, len(classes) * (s + pad) + pad, per_class * (s + pad) + pad), 255, dtype=torch.uint8
    )
    for row, c in enumerate(classes):
        idx = (ds.labels == c).nonzero().flatten()[:per_class]
        for col, i in enumerate(idx.tolist()):
            y, x = pad + row * (s + pad), pad + col * (s + pad)
            grid[:, y : y + s, x : x + s] = ds.images[i]
    return grid


def derive_seed(*values: int) -> int:
    """Mix integers (e.g. a user seed and a task index) into one well-spread 63-bit seed."""
    if any(int(v) < 0 for v in values):
        raise ConfigError(f"seeds and indices must be non-negative integers, got {values}")
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def escaped(name: object) -> str:
    """A class or file name made safe to print: each control character (C0, DEL, C1, bidi) written as an
    escape such as ``\\n`` or ``\\x1b``, so a name with a newline or a terminal escape shows what it holds."""
    def one(m: re.Match) -> str:
        c = m.group(0)
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c)
        return named or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
    return _CONTROLS.sub(one, str(name))
