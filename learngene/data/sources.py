"""Data set sources and the single entry point `load_dataset`.

Specs: "shapes" (embedded, generated), "cifar100" (torchvision files on disk), "folder:<path>"
(ImageFolder layout: one sub-folder per class). Everything is returned as an `ImageSet` with uint8
images; problems with the input become `DataError` / `ConfigError` messages.

Image size (`image_size`, the CLI's --img-size, default 32): every image is read at that size, made from
its native resolution in one step (a folder's files are decoded straight to it, never through 32 px).
Small sets are held in memory. A folder whose decoded images would take more than
`STREAM_ABOVE_BYTES` is *streamed*: its labels are read from the file names, its images are decoded when
first used and kept in a decoded-image cache on disk (see `learngene.data.stream`), so `data info`, a
few-shot task or a DataLoader-fed training needs memory for what it uses, not for the data set.
CIFAR-100 above 32 px stays 32 px in memory and is resized when read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

from learngene.data.base import ClassSplit, ImageSet, derive_seed, escaped
from learngene.data.shapes import (
    DEFAULT_IMAGES_PER_CLASS,
    NUM_CLASSES,
    _checksum,
    cache_dir,
    file_reader,
    load_mapped,
    load_shapes,
    stored_checksum,
)
from learngene.data.stream import (
    FolderImages,
    ResizedImages,
    decode_or_reason,
    decoded_cache_dir,
    header_or_reason,
    resize_images,
    stream_cache_root,
)
from learngene.errors import ConfigError, DataError

DATASETS: dict[str, str] = {
    "shapes": "Embedded procedural data set (no download): 100 classes = 10 shapes x 10 patterns, "
    "32x32, 600 images per class, split 64 base / 16 open-world / 20 novel.",
    "cifar100": "CIFAR-100 train+test merged (600 images per class), split by class index "
    "0-63 base / 64-79 open-world / 80-99 novel; needs `cifar-100-python` under --data-root.",
    "folder:<path>": "Your own images, one sub-folder per class (ImageFolder layout), centre-cropped and "
    "resized to --img-size (default 32); large folders are streamed from disk; classes split by ratio "
    "(seeded) or by a split JSON file.",
}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"

# Bounds of what a user may ask for (the CLI's --help names them): a mistyped count gets a one-line
# error instead of an allocation failure or a machine swapping itself to death.
MAX_IMAGES_PER_CLASS = 10_000
MIN_IMAGE_SIZE = 4  # side length in pixels
MAX_IMAGE_SIZE = 1_024
SHAPES_IMAGE_SIZES = (8, 256)  # the shapes data set is drawn at sizes from 8 to 256
MAX_DATASET_BYTES = 17_179_869_184  # 16 GiB: the uint8 pixels of a whole data set held in memory
STREAM_ABOVE_BYTES = 134_217_728  # 128 MiB: a folder whose decoded images take more is streamed (see the module doc)


def default_data_root() -> Path:
    """Where downloadable data sets live: `$LEARNGENE_DATA` or `~/.cache/learngene/data`."""
    root = os.environ.get("LEARNGENE_DATA") or os.path.join(
        os.path.expanduser("~"), ".cache", "learngene", "data"
    )
    return Path(root)


# How check_request / check_memory name a setting in their messages: by its parameter name for a library
# caller; a command sets the options its user typed with `option_names` (the check may run deep inside
# `load_dataset`, so the names travel in a context variable rather than through every signature).
_OPTION_NAMES: ContextVar[Mapping[str, str] | None] = ContextVar("learngene_data_option_names", default=None)


@contextmanager
def option_names(**names: str) -> Iterator[None]:
    """Within the block, data-request errors name each setting as given, e.g.
    ``with option_names(images_per_class="--images-per-class"):`` in a command that has that option.
    Settings left out are named by their parameter name (check_request) or not suggested (check_memory)."""
    token = _OPTION_NAMES.set(dict(names))
    try:
        yield
    finally:
        _OPTION_NAMES.reset(token)


def _name(setting: str) -> str:
    names = _OPTION_NAMES.get()
    return setting if names is None else names.get(setting, setting)


def check_request(images_per_class: int | None, image_size: int) -> None:
    """Refuse an images-per-class or image size outside the documented bounds (before any work); the
    message names the setting as the caller's user typed it (see `option_names`)."""
    for name, value, low, high in (("images_per_class", images_per_class, 1, MAX_IMAGES_PER_CLASS),
                                   ("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)):
        if value is None and name == "images_per_class":  # None: every image
            continue
        try:
            ok = not isinstance(value, bool) and low <= operator.index(value) <= high
        except TypeError:
            ok = False
        if not ok:
            raise ConfigError(f"{_name(name)} must be a whole number from {low} to {high}, got {value!r}")


def check_memory(n_images: int, image_size: int) -> None:
    """Refuse a data set whose pixels would take more than `MAX_DATASET_BYTES` of memory."""
    need = n_images * 3 * image_size * image_size
    if need > MAX_DATASET_BYTES:
        names = _OPTION_NAMES.get()
        settings = ("images_per_class", "image_size")
        typed = list(settings) if names is None else [names[s] for s in settings if s in names]
        hint = f"lower {' or '.join(typed)}" if typed else "use fewer or smaller images"
        raise ConfigError(
            f"{n_images} images of {image_size}x{image_size} pixels would take {need / 2**30:.1f} GiB of memory, "
            f"more than the {MAX_DATASET_BYTES / 2**30:.0f} GiB limit; {hint}"
        )


def _cap_per_class(labels: torch.Tensor, images_per_class: int | None) -> torch.Tensor:
    """Indices keeping the first `images_per_class` images of each class (in data order)."""
    if images_per_class is None:
        return torch.arange(labels.shape[0])
    if images_per_class < 1:
        raise ConfigError(f"images_per_class must be at least 1, got {images_per_class}")
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.arange(labels.shape[0]) - starts  # position of each image within its class
    keep = order[rank < images_per_class]
    return keep.sort().values


def load_cifar100(
    root: str | None = None, download: bool = False, images_per_class: int | None = None
) -> ImageSet:
    """CIFAR-100 train+test merged, with the paper split 0-63 / 64-79 / 80-99 by class index."""
    folder = Path(root).expanduser() if root else default_data_root()
    if not download and not (folder / "cifar-100-python").is_dir():
        raise DataError(
            f"CIFAR-100 not found: {folder / 'cifar-100-python'} does not exist and download is off. "
            f"Put the extracted `cifar-100-python` folder (from {CIFAR_URL}) inside {folder}, or pass "
            "--data-root DIR where DIR contains `cifar-100-python`; or pass --download on a machine "
            "with internet access."
        )
    from torchvision.datasets import CIFAR100

    parts = []
    try:
        for train in (True, False):
            parts.append(CIFAR100(str(folder), train=train, download=download))
    except Exception as exc:  # RuntimeError when missing; URLError/OSError when offline
        how = (
            "the download failed (no internet?)" if download else "the files there are incomplete or corrupt"
        )
        raise DataError(
            f"CIFAR-100 could not be loaded from {folder}: {how} ({type(exc).__name__}: {exc}). "
            f"Put the extracted `cifar-100-python` folder (from {CIFAR_URL}) inside {folder}, or pass "
            "--data-root DIR where DIR contains `cifar-100-python`; or pass --download on a machine "
            "with internet access."
        ) from exc
    images = torch.cat([torch.from_numpy(p.data).permute(0, 3, 1, 2) for p in parts])  # (N, 3, 32, 32)
    labels = torch.cat([torch.as_tensor(p.targets, dtype=torch.long) for p in parts])
    keep = _cap_per_class(labels, images_per_class)
    split = ClassSplit(tuple(range(64)), tuple(range(64, 80)), tuple(range(80, 100)))
    meta = {"source": "cifar100", "root": str(folder)}
    return ImageSet(
        "cifar100", images[keep].contiguous(), labels[keep], list(parts[0].classes), split, 0, meta
    )




def _class_files(sub: Path) -> tuple[list[Path], str]:
    """The image files of class folder `sub`, and when there are none, why (for the dropped-classes note)."""
    entries = [f for f in sub.iterdir() if not f.name.startswith(".")]
    files = sorted(f for f in entries if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if files:
        return files, ""
    if not entries:
        return [], "empty"
    if all(f.is_dir() for f in entries):
        return [], "only sub-folders; images must lie directly in the class folder"
    return [], f"no image files (expected {', '.join(IMAGE_EXTENSIONS)})"


def _scan_folder(path: Path) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Class name -> sorted image files, for every non-hidden sub-folder of `path` that holds images; and
    class folder -> why it was left out, for the others."""
    if not path.is_dir():
        raise DataError(
            f"image folder {path} does not exist or is not a folder; expected one sub-folder per class "
            "(e.g. folder:/data/pets with /data/pets/cat/*.jpg, /data/pets/dog/*.jpg)"
        )
    classes, dropped = {}, {}
    try:
        for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files, why = _class_files(sub)
            if files:
                classes[sub.name] = files
            else:
                dropped[sub.name] = why
    except OSError as exc:
        raise DataError(f"image folder {path} cannot be read: {exc.strerror or exc}") from None
    if not classes:
        left = f"; left out: {_dropped_text(dropped)}" if dropped else ""
        raise DataError(
            f"no classes found in {path}: it needs one sub-folder per class holding image files "
            f"({', '.join(IMAGE_EXTENSIONS)}){left}"
        )
    return classes, dropped


def _dropped_text(dropped: dict[str, str], show: int = 5) -> str:
    items = [f"'{escaped(name)}' ({why})" for name, why in list(dropped.items())[:show]]
    more = f" and {len(dropped) - show} more" if len(dropped) > show else ""
    return ", ".join(items) + more


def ratio_split(num_classes: int, ratio: Sequence[float], seed: int) -> ClassSplit:
    """Split class ids 0..C-1 by `ratio` (base, open, novel) after a seeded shuffle."""
    if len(ratio) != 3 or any(float(r) < 0 for r in ratio) or abs(sum(float(r) for r in ratio) - 1.0) > 1e-6:
        raise ConfigError(
            f"split_ratio must be three non-negative fractions summing to 1, got {tuple(ratio)}"
        )
    if num_classes < 3:
        raise DataError(
            f"need at least 3 classes to split into base / open-world / novel, found {num_classes}"
        )
    sizes = [max(1, round(num_classes * float(r))) for r in ratio[:2]]
    sizes.append(num_classes - sum(sizes))
    while sizes[2] < 1:  # rounding took too many: give back from the largest of the first two
        i = 0 if sizes[0] >= sizes[1] else 1
        sizes[i] -= 1
        sizes[2] += 1
    if min(sizes) < 1:
        raise DataError(
            f"cannot split {num_classes} classes into three non-empty parts with ratio {tuple(ratio)}"
        )
    gen = torch.Generator().manual_seed(derive_seed(seed))
    perm = torch.randperm(num_classes, generator=gen).tolist()
    a, b = sizes[0], sizes[0] + sizes[1]
    return ClassSplit(tuple(sorted(perm[:a])), tuple(sorted(perm[a:b])), tuple(sorted(perm[b:])))


MAX_SPLIT_BYTES = 16 * 2**20  # a split file naming 100,000 classes takes a few MiB
SPLIT_KEYS = {"base": "base", "open_world": "open_world", "open-world": "open_world", "openworld": "open_world",
              "open world": "open_world", "open": "open_world", "novel": "novel"}
NOTE_KEYS = ("comment", "comments", "description", "note", "notes")  # ignored, as are keys starting with _ or #


def _split_json(path: str | os.PathLike) -> dict:
    from learngene.runlog import read_bounded

    try:
        data = read_bounded(path, MAX_SPLIT_BYTES, "split file")
    except FileNotFoundError:
        raise DataError(f"split file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"split file {path} is a folder, not a file") from None
    except OSError as exc:
        raise DataError(f"split file {path} cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:  # too large, or not a regular file
        raise DataError(str(exc)) from None
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError, too deeply nested
        raise DataError(f"split file {path} is not valid JSON: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(raw, dict):
        raise DataError(f"split file {path} must hold an object with keys base, open_world, novel")
    return raw


def _split_parts(path: str | os.PathLike, raw: dict) -> dict[str, list]:
    """The three class lists of a split file by their canonical keys (accepted spellings, notes skipped)."""
    parts: dict[str, list] = {}
    for key, names in raw.items():
        k = str(key).strip().lower()
        if k in NOTE_KEYS or k.startswith(("_", "#")):
            continue
        canonical = SPLIT_KEYS.get(k)
        if canonical is None:
            raise DataError(f"split file {path}: unknown key '{escaped(key)}'; a split file has the keys base, "
                            f"open_world (or open-world, openworld) and novel, and may have a {NOTE_KEYS[0]!r}")
        if canonical in parts:
            raise DataError(f"split file {path}: the {canonical} classes are given twice (as two spellings of "
                            f"the key '{canonical}')")
        parts[canonical] = names
    missing = [k for k in ("base", "open_world", "novel") if k not in parts]
    if missing:
        raise DataError(f"split file {path} lacks the key(s) {', '.join(repr(m) for m in missing)}; it needs "
                        "base, open_world (or open-world, openworld) and novel, each a list of class names")
    return parts


def read_split_file(path: str | os.PathLike, class_names: Sequence[str]) -> ClassSplit:
    """Read {"base": [names], "open_world": [names], "novel": [names]} into a validated ClassSplit.

    At most `MAX_SPLIT_BYTES` are read. The open-world key may be spelled open_world, open-world or
    openworld; notes ("comment", or keys starting with _ or #) are ignored; classes are named by name in
    every message (a class in two parts, twice in one, or unknown)."""
    return split_from_parts(path, _split_parts(path, _split_json(path)), class_names)


def split_from_parts(path: str | os.PathLike, parts: dict[str, list], class_names: Sequence[str]) -> ClassSplit:
    """The ClassSplit of a split file's three class lists (see `read_split_file`)."""
    index = {name: i for i, name in enumerate(class_names)}
    seen: dict[str, str] = {}
    ids = {}
    for key, names in parts.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"split file {path}: '{key}' must be a list of class names")
        if not names:
            raise DataError(f"split file {path}: '{key}' is empty; every part needs at least one class")
        unknown = [escaped(n) for n in names if n not in index]
        if unknown:
            raise DataError(
                f"split file {path}: unknown class name(s) {unknown[:5]} in '{key}'; "
                f"known classes start with {[escaped(n) for n in list(class_names)[:5]]}"
            )
        for n in names:
            if n in seen:
                where = f"listed twice in '{key}'" if seen[n] == key else f"in both '{seen[n]}' and '{key}'"
                raise DataError(f"split file {path}: class '{escaped(n)}' is {where}; each class belongs to "
                                "exactly one part")
            seen[n] = key
        ids[key] = [index[n] for n in names]
    try:
        split = ClassSplit.from_dict(ids)
        split.validate(len(class_names))
    except DataError as exc:
        raise DataError(f"split file {path}: {exc}") from None
    return split


FOLDER_CACHE_VERSION = 2  # bump when decode_or_reason changes what it makes of a file
FOLDER_CACHE_ENTRIES = 16  # decoded folders kept in the cache


def _folder_key(root: Path, classes: dict[str, list[Path]], image_size: int,
                images_per_class: int | None) -> str | None:
    """Cache key of a decoded folder: its path, every file's name, size and modification time, and the
    decoding settings. None when a file cannot be stat'ed (then nothing is cached)."""
    digest = hashlib.sha256(json.dumps([FOLDER_CACHE_VERSION, str(root.resolve()), image_size,
                                        images_per_class]).encode())
    try:
        for name, files in classes.items():
            digest.update(f"\0{name}\0".encode())
            for f in files:
                st = f.stat()
                digest.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    except OSError:
        return None
    return digest.hexdigest()[:32]


def _read_folder_cache(path: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """(images, labels, skipped files) from a cache file, or None when missing or not consistent. The
    images stay memory-mapped from the file (checked against their checksum by reading the file)."""
    try:
        obj = load_mapped(path)
        images, labels, bad = obj["images"], obj["labels"], list(obj["skipped"])
        ok = (obj.get("names") == names and images.dtype == torch.uint8 and images.ndim == 4
              and labels.shape == (images.shape[0],) and images.is_contiguous()
              and obj.get("checksum") == stored_checksum(path, images.nbytes))
        return (images, labels, bad) if ok else None
    except Exception:  # missing, truncated, corrupt: decode again
        return None


def _cache_write(path: Path, mode: str, write: Callable[[Any], None], keep: str, entries: int) -> None:
    """Write a cache entry atomically with `write(file)`, then keep only the newest `entries` files matching
    `keep` in its folder (a folder that changed leaves its old entry behind). A cache that cannot be
    written is silently not used."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except (OSError, RuntimeError):
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return
    try:
        stale = sorted(path.parent.glob(keep), key=lambda p: p.stat().st_mtime, reverse=True)[entries:]
        for old in stale:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def _write_folder_cache(path: Path, images: torch.Tensor, labels: torch.Tensor, names: list[str],
                        bad: list[str]) -> None:
    record = {"images": images, "labels": labels, "names": names, "skipped": bad, "checksum": _checksum(images)}
    _cache_write(path, "wb", lambda f: torch.save(record, f), "*.pt", FOLDER_CACHE_ENTRIES)


INDEX_VERSION = 2  # bump when the streamed-folder index changes what it records
INDEX_ENTRIES = 16  # streamed-folder indexes kept in the cache


def _read_index(path: Path, names: list[str]) -> tuple[list[str], list[int], list[str]] | None:
    try:
        obj = json.loads(path.read_text())
        ok = (obj.get("version") == INDEX_VERSION and obj.get("names") == names
              and len(obj["files"]) == len(obj["labels"]))
        return (list(obj["files"]), [int(c) for c in obj["labels"]], list(obj["skipped"])) if ok else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_index(path: Path, names: list[str], files: list[str], labels: list[int], bad: list[str]) -> None:
    record = {"version": INDEX_VERSION, "names": names, "files": files, "labels": labels, "skipped": bad}
    _cache_write(path, "w", lambda f: json.dump(record, f), "*.index.json", INDEX_ENTRIES)


def _read_classes(root: Path, classes: dict[str, list[Path]], images_per_class: int | None,
                  read: Callable[[Path], Any]) -> tuple[list[Any], list[int], list[str]]:
    """`read` each class's files in order until `images_per_class` of them gave a value (a string: the
    reason the file is skipped, counted and listed). Returns the values, their class ids, and the skipped
    files (relative paths, each with its reason)."""
    values, labels, bad = [], [], []
    for c, files in enumerate(classes.values()):
        kept = 0
        for f in files:
            if images_per_class is not None and kept >= images_per_class:
                break
            value = read(f)
            if isinstance(value, str):
                bad.append(f"{f.relative_to(root).as_posix()} ({value})")
                continue
            values.append(value)
            labels.append(c)
            kept += 1
    return values, labels, bad


def _header_checked(root: Path) -> Callable[[Path], str | tuple[str]]:
    def read(f: Path) -> str | tuple[str]:
        why = header_or_reason(f)
        return why if why is not None else (f.relative_to(root).as_posix(),)
    return read


def _load_folder_streamed(root: Path, classes: dict[str, list[Path]], image_size: int,
                          images_per_class: int | None, cache: bool, dropped: dict[str, str]) -> ImageSet:
    """The streamed form of `load_folder`: labels and file list now (each file's header checked, so an
    unreadable file is skipped and counted as in memory), pixels when first used."""
    names = list(classes)
    key = _folder_key(root, classes, 0, images_per_class) if cache else None
    index_file = stream_cache_root() / f"{key}.index.json" if key else None
    found = _read_index(index_file, names) if index_file is not None and index_file.is_file() else None
    if found is not None:
        files, labels, bad = found
        with contextlib.suppress(OSError):
            os.utime(index_file)
    else:
        found_files, labels, bad = _read_classes(root, classes, images_per_class, _header_checked(root))
        files = [f for (f,) in found_files]
        if index_file is not None:
            _write_index(index_file, names, files, labels, bad)
    if not files:
        raise DataError(f"none of the image files under {root} could be opened ({len(bad)} tried)")
    decoded = decoded_cache_dir(key, image_size, len(files)) if key else None
    images = FolderImages(root, files, image_size, decoded)
    placeholder = ClassSplit((0,), (0,), (0,))
    meta = {"source": "folder", "root": str(root), "skipped_files": bad[:50], "from_cache": found is not None,
            "streamed": True, "decoded_cache": str(decoded) if decoded else None, "dropped_classes": dropped}
    return ImageSet(f"folder:{root.name}", images, torch.tensor(labels, dtype=torch.long), names, placeholder,
                    len(bad), meta)


def load_folder(
    path: str | os.PathLike, image_size: int = 32, images_per_class: int | None = None, cache: bool = True,
    stream: bool | None = None,
) -> ImageSet:
    """Read an ImageFolder tree; undecodable files (decompression bombs included) are skipped and counted.

    Every file is centre-cropped and resized from its native resolution to `image_size` in one step.
    In memory (`stream` False, or None and the decoded set at most `STREAM_ABOVE_BYTES`): the decoded set
    is cached under `$LEARNGENE_CACHE/shapes/folders/` (default ~/.cache/learngene), keyed by the folder's
    path and every file's name, size and modification time, so the next command that reads the same
    unchanged folder skips decoding. Streamed (`stream` True, or None and larger): the images are a
    `FolderImages`, decoded when used (see the module doc). The class split is set by the caller.
    """
    check_request(images_per_class, image_size)
    root = Path(path).expanduser()
    classes, dropped = _scan_folder(root)
    n_images = sum(len(f) if images_per_class is None else min(len(f), images_per_class) for f in classes.values())
    if stream is None:
        stream = n_images * 3 * image_size * image_size > STREAM_ABOVE_BYTES
    if stream:
        return _load_folder_streamed(root, classes, image_size, images_per_class, cache, dropped)
    check_memory(n_images, image_size)
    names = list(classes)
    key = _folder_key(root, classes, image_size, images_per_class) if cache else None
    cache_file = cache_dir() / "folders" / f"{key}.pt" if key else None
    found = _read_folder_cache(cache_file, names) if cache_file is not None and cache_file.is_file() else None
    reader = None
    if found is not None:
        stacked, label_t, bad = found
        reader = file_reader(cache_file, stacked)
    else:
        images, labels, bad = _read_classes(root, classes, images_per_class, lambda f: decode_or_reason(f, image_size))
        if not images:
            raise DataError(f"none of the image files under {root} could be decoded ({len(bad)} tried)")
        stacked, label_t = torch.stack(images), torch.tensor(labels)
        if cache_file is not None:
            _write_folder_cache(cache_file, stacked, label_t, names, bad)
    placeholder = ClassSplit((0,), (0,), (0,))
    meta = {"source": "folder", "root": str(root), "skipped_files": bad[:50], "from_cache": found is not None,
            "dropped_classes": dropped}
    return ImageSet(f"folder:{root.name}", stacked, label_t, names, placeholder, len(bad), meta, reader=reader)


def _load_shapes_spec(seed: int, images_per_class: int | None, image_size: int, cache: bool) -> ImageSet:
    low, high = SHAPES_IMAGE_SIZES
    if not low <= image_size <= high:
        raise ConfigError(f"{_name('image_size')} must be from {low} to {high} for the shapes data set (it is "
                          f"drawn at those sizes; folder: and cifar100 data take {MIN_IMAGE_SIZE} to "
                          f"{MAX_IMAGE_SIZE}), got {image_size}")
    check_memory(NUM_CLASSES * (images_per_class or DEFAULT_IMAGES_PER_CLASS), image_size)
    return load_shapes(seed=seed, images_per_class=images_per_class, image_size=image_size, cache=cache)


def _load_cifar_spec(root: str | None, download: bool, images_per_class: int | None, image_size: int) -> ImageSet:
    native = 32
    check_memory(100 * min(600, images_per_class or 600), min(image_size, native))
    ds = load_cifar100(root=root, download=download, images_per_class=images_per_class)
    if image_size > native:  # kept at 32 px in memory, resized when read
        ds.images = ResizedImages(ds.images, image_size)
        ds.meta["streamed"] = True
    else:
        ds.images = resize_images(ds.images, image_size)
    return ds


def load_dataset(
    spec: str = "shapes",
    *,
    root: str | None = None,
    seed: int = 0,
    download: bool = False,
    images_per_class: int | None = None,
    split_file: str | None = None,
    split_ratio: Sequence[float] = (0.64, 0.16, 0.20),
    image_size: int = 32,
    cache: bool = True,
    stream: bool | None = None,
) -> ImageSet:
    """Load a data set by spec: "shapes", "cifar100" or "folder:<path>" (see `DATASETS`).

    Args:
        spec: which data set.
        root: data folder for "cifar100" (default `$LEARNGENE_DATA` or ~/.cache/learngene/data).
        seed: generation seed for "shapes"; class-split shuffle for "folder:".
        download: allow torchvision to download CIFAR-100.
        images_per_class: generate (shapes) or keep (first N per class) this many images per class
            (at most `MAX_IMAGES_PER_CLASS`).
        split_file: JSON {"base": [names], "open_world": [names], "novel": [names]} overriding the split.
        split_ratio: base / open / novel fractions for "folder:" without a split file.
        image_size: side length of every image (the CLI's --img-size), made from each image's native
            resolution: generated at it ("shapes"), decoded to it ("folder:"), CIFAR's 32 px resized to it
            (when read, for sizes above 32). At most `MAX_IMAGE_SIZE`; the images held in memory at most
            `MAX_DATASET_BYTES`.
        cache: read/write the generated ("shapes") or decoded ("folder:") images in the cache folder.
        stream: "folder:" only: stream the images from disk (True), hold them in memory (False), or
            decide by size (None: streamed above `STREAM_ABOVE_BYTES`); see the module doc.
    """
    check_request(images_per_class, image_size)
    parts = _split_parts(split_file, _split_json(split_file)) if split_file is not None else None  # before any work
    kind = spec.strip()
    if kind.lower() == "shapes":
        ds = _load_shapes_spec(seed, images_per_class, image_size, cache)
    elif kind.lower() in ("cifar100", "cifar-100"):
        ds = _load_cifar_spec(root, download, images_per_class, image_size)
    elif kind.lower().startswith("folder:") and kind[7:].strip():
        ds = load_folder(kind[7:].strip(), image_size=image_size, images_per_class=images_per_class,
                         cache=cache, stream=stream)
        if split_file is None:
            ds.split = ratio_split(ds.num_classes, split_ratio, seed)
    else:
        raise ConfigError(f"unknown data set {spec!r}; choose one of: {', '.join(DATASETS)}")
    if parts is not None:
        ds.split = split_from_parts(split_file, parts, ds.class_names)
    ds.split.validate(ds.num_classes)
    ds.meta.update({"spec": spec, "split": ds.split.to_dict()})
    return ds
