"""The class split an ancestry was trained with is binding for everything built from it.

An ancestry's model card records its data and split as a *split record* (`split_record`): the data set,
the class ids of each part and, since round 2, their names. Descendants and pseudo-descendants must be
trained and measured on classes the ancestry never saw; otherwise the learngene's advantage is inflated
by plain memory. `bind_split` enforces that on a freshly loaded `ImageSet`:

* no split asked for (no --data-seed, no --split-file) and the same data set: the card's split is used;
* a split asked for, or other data: it is used only if its open-world and novel classes avoid the base
  classes the ancestry saw (compared by class name), else a `DataError` names the overlapping classes.

A learngene file carries its ancestry's record, so the same rules hold for `train --learngene`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from learngene.data.base import ClassSplit, ImageSet
from learngene.errors import ConfigError, DataError

_PARTS = ("base", "open_world", "novel")
_SHOW = 6  # class names shown in a message


def split_record(ds: ImageSet, *, spec: str, seed: int, split_file: str | None = None,
                 flip: bool | None = None) -> dict[str, Any]:
    """What a model card records about the data and split a model was trained with.

    The class ids keep the round-1 card layout (`base`, `open_world`, `novel`); `names` makes the split
    checkable on any copy of the data whatever its class order.
    """
    ids = ds.split.to_dict()
    rec: dict[str, Any] = {**ids, "names": {p: [ds.class_names[c] for c in ids[p]] for p in _PARTS},
                           "dataset": ds.name, "spec": spec, "data_seed": int(seed), "split_file": split_file,
                           "image_size": ds.image_size}
    if flip is not None:
        rec["flip"] = bool(flip)
    return rec


@dataclass(frozen=True)
class Bound:
    """The split an ancestry binds: its data set and the class names of each part (None when unknown)."""

    origin: str  # "ancestry <path>" or "learngene <path>", for messages
    dataset: str
    spec: str | None
    data_seed: int | None
    split_file: str | None
    ids: ClassSplit | None
    names: dict[str, tuple[str, ...]] | None
    flip: bool | None
    image_size: int | None = None  # the side length its models take (the data is loaded at it)

    @property
    def known(self) -> bool:
        return self.ids is not None or self.names is not None


def bound_of(record: Mapping[str, Any] | None, dataset: str, origin: str) -> Bound:
    """Read a card's (or a learngene file's) split record; tolerate the round-1 id-only layout."""
    rec = dict(record or {})
    ids = names = None
    if all(isinstance(rec.get(p), list) for p in _PARTS):
        try:
            ids = ClassSplit.from_dict({p: rec[p] for p in _PARTS})
        except DataError:
            ids = None
    raw = rec.get("names")
    if isinstance(raw, Mapping) and all(isinstance(raw.get(p), list) for p in _PARTS):
        names = {p: tuple(str(n) for n in raw[p]) for p in _PARTS}
    seed = rec.get("data_seed")
    size = rec.get("image_size")
    return Bound(image_size=size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None,
                 origin=origin, dataset=str(rec.get("dataset") or dataset or ""),
                 spec=rec.get("spec") if isinstance(rec.get("spec"), str) else None,
                 data_seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                 split_file=rec.get("split_file") if isinstance(rec.get("split_file"), str) else None,
                 ids=ids, names=names, flip=rec.get("flip") if isinstance(rec.get("flip"), bool) else None)


def _names_of(bound: Bound, ds: ImageSet) -> dict[str, tuple[str, ...]] | None:
    """The bound split as class names of `ds`'s data set, or None when it cannot be related to `ds`."""
    if bound.names is not None:
        return bound.names
    if bound.ids is None or bound.dataset != ds.name:
        return None  # an id-only record says nothing about another data set's classes
    top = max(max(getattr(bound.ids, p)) for p in _PARTS)
    if top >= ds.num_classes:
        return None
    return {p: tuple(ds.class_names[c] for c in getattr(bound.ids, p)) for p in _PARTS}


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_SHOW])
    return shown + (f" and {len(names) - _SHOW} more" if len(names) > _SHOW else "")


def bind_split(ds: ImageSet, bound: Bound | None, *, explicit: bool, hint: str = "") -> str:
    """Apply the ancestry's split to `ds` (in place) or check `ds`'s split against it.

    Args:
        ds: the freshly loaded data set, with the split the user's options gave it.
        bound: the ancestry's split record (None or unknown: nothing to bind, nothing checked).
        explicit: the user asked for a split (--data-seed or --split-file); it is kept if it is safe.
        hint: what the user can type to change the split, for the refusal message.

    Returns:
        One line saying which split is used, for the command's output.

    Raises:
        DataError: the split's open-world or novel classes include base classes of the ancestry, or the
            data set lacks classes the ancestry's split names.
    """
    if bound is None:
        return "class split: from the data options"
    if not bound.known:
        return f"class split: from the data options (the {bound.origin} records none)"
    names = _names_of(bound, ds)
    if names is None:
        return (f"class split: from the data options; the {bound.origin} was trained on {bound.dataset!r}, "
                f"whose classes cannot be compared with {ds.name!r}'s")
    index = {n: i for i, n in enumerate(ds.class_names)}
    if not explicit and bound.dataset == ds.name:
        missing = [n for p in _PARTS for n in names[p] if n not in index]
        if missing:
            raise DataError(f"{ds.name} lacks {len(missing)} class(es) of the {bound.origin}'s split: "
                            f"{_listing(missing)}; is it the same data the ancestry was trained on?")
        ds.split = ClassSplit(*(tuple(index[n] for n in names[p]) for p in _PARTS))
        ds.split.validate(ds.num_classes)
        ds.meta["split"] = ds.split.to_dict()
        ds.meta["split_from"] = bound.origin
        return f"class split: that of the {bound.origin} ({', '.join(f'{len(names[p])} {p}' for p in _PARTS)})"
    base = set(names["base"])
    clash = [ds.class_names[c] for p in ("open_world", "novel") for c in getattr(ds.split, p)
             if ds.class_names[c] in base]
    if clash:
        raise DataError(
            f"{len(clash)} of the open-world/novel classes of this split are base classes the {bound.origin} "
            f"was trained on: {_listing(clash)}; results on them would be inflated. Use the ancestry's own "
            f"split (drop {hint or '--data-seed / --split-file'}) or one whose open-world and novel classes "
            "avoid its base classes")
    return ("class split: from the data options; its open-world and novel classes avoid the base classes of "
            f"the {bound.origin}")


def bound_of_card(card: Any, path: Any) -> Bound:
    """The split an ancestry's `ModelCard` binds (round-1 cards: ids only, data spec from `data_meta`)."""
    return bound_of(card_split_record(card), card.dataset, f"ancestry {path}")


def card_split_record(card: Any) -> dict[str, Any]:
    """A card's split record, completed from its `data_meta` for round-1 cards (spec, seed, dataset)."""
    record = dict(card.split or {})
    record.setdefault("dataset", card.dataset)
    size = getattr(getattr(card, "spec", None), "img_size", None)
    if isinstance(size, int) and size > 0:
        record.setdefault("image_size", size)  # the models' input size, which the data must match
    if "spec" not in record:
        meta = card.extra.get("data_meta") if isinstance(card.extra, Mapping) else None
        if isinstance(meta, Mapping) and isinstance(meta.get("spec"), str):
            record["spec"] = meta["spec"]
            seed = meta.get("seed")
            if isinstance(seed, int) and not isinstance(seed, bool):
                record.setdefault("data_seed", seed)
    return record


def resolve_flip(mode: str, ds: ImageSet, bound: Bound | None = None) -> bool:
    """--flip: on/off as given; auto: the ancestry card's setting for its own data, else the data set's
    default (shapes and cifar100 are mirror-safe; a folder may hold letters or digits, so off)."""
    if mode in ("on", "off"):
        return mode == "on"
    if mode != "auto":
        raise DataError(f"flip must be auto, on or off, got {mode!r}")
    if bound is not None and bound.flip is not None and bound.dataset == ds.name:
        return bound.flip
    return not ds.name.startswith("folder:")


def load_bound(spec: str | None, bound: Bound | None = None, *, root: str | None = None, download: bool = False,
               data_seed: int | None = None, split_file: str | None = None, images_per_class: int | None = None,
               flip: str = "auto", image_size: int | None = None) -> tuple[ImageSet, str]:
    """Load a data set for a model made from an ancestry, under the split the ancestry binds.

    `spec`, `data_seed` and `split_file` default (None) to the ancestry's record, else "shapes" and 0;
    giving `data_seed` or `split_file` asks for that split, which `bind_split` then checks. `image_size`
    defaults to the ancestry's input size (its record's `image_size`), else 32; another size than the
    ancestry's is refused (its models take that size). Sets ``ds.meta["flip"]`` (see `resolve_flip`)
    and ``ds.meta["data_seed"]``.

    Returns:
        The data set and one line saying which split is used.
    """
    from learngene.data.sources import _name, load_dataset

    fixed = bound.image_size if bound is not None else None
    if image_size is not None and fixed is not None and image_size != fixed:
        raise ConfigError(f"{_name('image_size')} {image_size} differs from the {bound.origin}'s input size of "
                          f"{fixed} px; its models take {fixed} px images (drop {_name('image_size')})")
    size = image_size if image_size is not None else fixed or 32

    card_data = bound is not None and bound.known
    spec = spec or (bound.spec if card_data and bound.spec else None) or "shapes"
    same = card_data and (bound.spec is None or bound.spec == spec)
    seed = data_seed
    if seed is None:
        seed = bound.data_seed if same and bound.data_seed is not None else 0
    ds = load_dataset(spec, root=root, seed=seed, download=download, images_per_class=images_per_class,
                      split_file=split_file, image_size=size)
    line = bind_split(ds, bound, explicit=data_seed is not None or split_file is not None,
                      hint="--data-seed / --split-file")
    ds.meta["flip"] = resolve_flip(flip, ds, bound)
    ds.meta["data_seed"] = seed
    if split_file is not None:
        ds.meta["split_file"] = str(Path(split_file).resolve())
    return ds, line
