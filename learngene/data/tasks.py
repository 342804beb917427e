"""Few-shot descendant tasks (N-way K-shot) and seeded per-class hold-out splits.

Sampling rule (what makes the sample-efficiency study fair): task `index` under `seed` draws its
classes from a generator seeded by (seed, index) only, so the classes never depend on K. Each chosen
class gets one seeded permutation of its images, from (seed, index, class id). The support set is
the first K images of that permutation, so the K=5 support set is a prefix of the K=10 one. The
test (query) set is the rest of the permutation after the first `reserve` images, where
`reserve = max(K, min(SUPPORT_RESERVE, n_c // 2))` for a class with n_c images: with the default
600 images per class the test set is identical for every K <= 20 (images 20.. of the permutation).

`sample_tasks` is lazy: it checks every task up front (without gathering images) and builds each
one only when it is reached, so memory does not grow with the number of tasks. A task reads only its
own images (`ImageSet.take`): from the cache file of the embedded data set, or decoded on demand from a
streamed folder, so a worker's memory does not grow with the data set either.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from learngene.data.base import ImageSet, Part, derive_seed, escaped
from learngene.errors import ConfigError, DataError

SUPPORT_RESERVE = 20  # largest K for which the test set stays the same
MIN_WAY = 2  # classes a task needs at least (a 1-way task has nothing to tell apart)
MAX_TASKS = 1_000  # most tasks one call may ask for (each trains two models: far beyond any study's need)


@dataclass
class Task:
    """One N-way K-shot classification task on global classes `classes`.

    Attributes:
        classes: global class ids; task label i means `classes[i]`.
        train_x: uint8 (n_way * k_shot, 3, H, W) support images, class-major order.
        train_y: int64 (n_way * k_shot,) labels in 0..n_way-1.
        test_x: uint8 (M, 3, H, W) held-back query images of the same classes.
        test_y: int64 (M,) labels in 0..n_way-1.
        n_way: number of classes.
        k_shot: support images per class.
        seed: the seed the task was drawn with.
        index: task number under that seed (task = f(seed, index)).
        part: split part the classes come from.
        train_index: indices of the support images in the source ImageSet.
        test_index: indices of the query images in the source ImageSet.
    """

    classes: tuple[int, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_way: int
    k_shot: int
    seed: int
    index: int = 0
    part: str = "novel"
    train_index: torch.Tensor | None = None
    test_index: torch.Tensor | None = None


_MALLOC_TRIM: Any = None  # glibc's malloc_trim once looked up; False where there is none


def release_freed_memory() -> None:
    """Give the heap memory freed so far back to the operating system (glibc's `malloc_trim`; nothing
    elsewhere). glibc keeps freed blocks for reuse, so without it a worker stays at the peak of its last
    task (e.g. an evaluation's activations) while it trains the next one or exits."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


def _check_positive(**values: int | None) -> None:
    for name, v in values.items():
        if v is not None and (isinstance(v, bool) or int(v) != v or v < 1):
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")


def _class_name(ds: ImageSet, c: int) -> str:
    return f"'{escaped(ds.class_names[c])}' (id {c})" if 0 <= c < ds.num_classes else f"id {c}"


def _choose_classes(ds: ImageSet, part: Part, n_way: int, seed: int, index: int) -> tuple[int, ...]:
    """The `n_way` classes of task `index`: drawn from split `part` by a generator seeded by (seed, index)."""
    pool = ds.split.classes(part)
    if n_way > len(pool) and len(pool) < MIN_WAY:
        raise DataError(
            f"split part '{part}' of {ds.name} has {len(pool)} class(es), but a task needs at least {MIN_WAY}; "
            f"use a data set with more classes, or a split file that puts at least {MIN_WAY} classes in '{part}'"
        )
    if n_way > len(pool):
        raise DataError(
            f"n_way {n_way} is more than the {len(pool)} classes in split part '{part}' of {ds.name}; "
            f"lower n_way to at most {len(pool)}"
        )
    gen = torch.Generator().manual_seed(derive_seed(seed, index))
    return tuple(pool[i] for i in torch.randperm(len(pool), generator=gen)[:n_way].tolist())


def _check_class_size(ds: ImageSet, c: int, n_c: int, k_shot: int) -> None:
    if n_c < k_shot + 1:
        fix = f"lower k_shot to at most {n_c - 1}, or use" if n_c >= 2 else "use a data set with"
        raise DataError(
            f"class {_class_name(ds, c)} of {ds.name} has only {n_c} image(s); a {k_shot}-shot task needs "
            f"at least {k_shot + 1} ({k_shot} to train, 1 to test): {fix} more images per class"
        )


def _permuted_class(ds: ImageSet, c: int, *seed_parts: int) -> torch.Tensor:
    """Indices of class `c` in a permutation seeded by `seed_parts` and the class id."""
    idx = (ds.labels == c).nonzero().flatten()
    gen = torch.Generator().manual_seed(derive_seed(*seed_parts, c))
    return idx[torch.randperm(idx.numel(), generator=gen)]


def sample_task(
    ds: ImageSet,
    part: Part = "novel",
    n_way: int = 5,
    k_shot: int = 10,
    seed: int = 0,
    test_per_class: int | None = None,
    *,
    index: int = 0,
) -> Task:
    """Draw one N-way K-shot task from the classes of split `part` (see the module doc for the rule).

    Args:
        ds: the image set.
        part: "base", "open" or "novel".
        n_way: classes per task.
        k_shot: support images per class.
        seed: task seed.
        test_per_class: keep only the first this-many held-back images per class (None: all).
        index: task number; `sample_tasks` passes 0..n_tasks-1.
    """
    _check_positive(n_way=n_way, k_shot=k_shot, test_per_class=test_per_class)
    chosen = _choose_classes(ds, part, n_way, seed, index)
    support, query, query_y = [], [], []
    for label, c in enumerate(chosen):
        perm = _permuted_class(ds, c, seed, index)
        n_c = perm.numel()
        _check_class_size(ds, c, n_c, k_shot)
        reserve = max(k_shot, min(SUPPORT_RESERVE, n_c // 2))
        held = perm[reserve:] if test_per_class is None else perm[reserve : reserve + test_per_class]
        support.append(perm[:k_shot])
        query.append(held)
        query_y.append(torch.full((held.numel(),), label, dtype=torch.long))
    train_index, test_index = torch.cat(support), torch.cat(query)
    return Task(
        classes=chosen,
        train_x=ds.take(train_index),  # reads only the task's images (a streamed set decodes just these)
        train_y=torch.arange(n_way).repeat_interleave(k_shot),
        test_x=ds.take(test_index),
        test_y=torch.cat(query_y),
        n_way=n_way,
        k_shot=k_shot,
        seed=seed,
        index=index,
        part=str(part),
        train_index=train_index,
        test_index=test_index,
    )


class TaskList(Sequence[Task]):
    """Tasks 0..n-1 of one (seed, part, n_way, k_shot): checked when made, each built when reached.

    `tasks[i]` and iteration build task i afresh (`sample_task(..., index=i)`) and keep nothing, so a
    caller that trains task by task holds one task's images at a time.
    """

    def __init__(self, ds: ImageSet, n_tasks: int, part: Part, n_way: int, k_shot: int, seed: int,
                 test_per_class: int | None):
        _check_positive(n_tasks=n_tasks, n_way=n_way, k_shot=k_shot, test_per_class=test_per_class)
        if n_tasks > MAX_TASKS:
            raise ConfigError(f"at most {MAX_TASKS} tasks can be asked for at once, got {n_tasks}")
        counts = ds.per_class_counts()
        for index in range(n_tasks):  # cheap: a class draw per task, no images gathered
            for c in _choose_classes(ds, part, n_way, seed, index):
                _check_class_size(ds, c, counts.get(c, 0), k_shot)
        self._n = int(n_tasks)
        self._args = (ds, part, n_way, k_shot, seed, test_per_class)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # int -> Task, slice -> list[Task]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        j = i + self._n if i < 0 else i
        if not 0 <= j < self._n:
            raise IndexError(f"task {i} is out of range for {self._n} tasks")
        return sample_task(*self._args, index=j)

    def __iter__(self) -> Iterator[Task]:
        for j in range(self._n):
            yield sample_task(*self._args, index=j)
            release_freed_memory()  # the caller is done with task j: what it freed goes back to the OS


def sample_tasks(
    ds: ImageSet,
    n_tasks: int,
    part: Part = "novel",
    n_way: int = 5,
    k_shot: int = 10,
    seed: int = 0,
    test_per_class: int | None = None,
) -> TaskList:
    """`n_tasks` (at most `MAX_TASKS`) tasks; task i is `sample_task(..., seed=seed, index=i)`.

    Every task is checked at once (DataError when a class is too small for `k_shot`); the images of
    task i are gathered only when it is reached (see `TaskList`).
    """
    return TaskList(ds, n_tasks, part, n_way, k_shot, seed, test_per_class)


def holdout_split(
    ds: ImageSet, classes: Iterable[int], holdout_per_class: int, seed: int, option: str = "holdout_per_class"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the images of `classes` into (train indices, held-out indices), both ascending.

    Each class holds out `holdout_per_class` images chosen by a permutation seeded by (seed, class id),
    so a class's hold-out does not depend on which other classes are included. `option` is how the
    caller's user sets `holdout_per_class` (e.g. "--holdout-per-class N"), named in error messages.
    """
    if (
        isinstance(holdout_per_class, bool)
        or int(holdout_per_class) != holdout_per_class
        or holdout_per_class < 0
    ):
        raise ConfigError(f"{option} must be a non-negative integer, got {holdout_per_class!r}")
    train, held = [], []
    for c in classes:
        perm = _permuted_class(ds, int(c), seed)
        if perm.numel() <= holdout_per_class:
            n = perm.numel()
            fix = (f"lower it ({option}) to at most {n - 1}, or use more images per class" if n >= 2 else
                   "every class needs at least 2 images (1 held out, 1 to train): add images to it or leave it out")
            raise DataError(f"class {_class_name(ds, int(c))} of {ds.name} has {n} image(s), too few to hold out "
                            f"{holdout_per_class} and still train; {fix}")
        held.append(perm[:holdout_per_class])
        train.append(perm[holdout_per_class:])
    if not train:
        raise ConfigError("holdout_split needs at least one class")
    return torch.cat(train).sort().values, torch.cat(held).sort().values
