"""Data set sources and the single entry point `load_dataset`.

Specs: "shapes" (embedded, generated), "cifar100" (torchvision files on disk), "folder:<path>"
(ImageFolder layout: one sub-folder per class). Everything is returned as an in-memory `ImageSet`
with uint8 images; problems with the input become `DataError` / `ConfigError` messages.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
import torch.nn.functional as F

from learngene.data.base import ClassSplit, ImageSet, derive_seed
from learngene.data.shapes import DEFAULT_IMAGES_PER_CLASS, NUM_CLASSES, _checksum, cache_dir, load_shapes
from learngene.errors import ConfigError, DataError

DATASETS: dict[str, str] = {
    "shapes": "Embedded procedural data set (no download): 100 classes = 10 shapes x 10 patterns, "
    "32x32, 600 images per class, split 64 base / 16 open-world / 20 novel.",
    "cifar100": "CIFAR-100 train+test merged (600 images per class), split by class index "
    "0-63 base / 64-79 open-world / 80-99 novel; needs `cifar-100-python` under --data-root.",
    "folder:<path>": "Your own images, one sub-folder per class (ImageFolder layout), resized to 32x32; "
    "classes split by ratio (seeded) or by a split JSON file.",
}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"

# Bounds of what a user may ask for (the CLI's --help names them): a mistyped count gets a one-line
# error instead of an allocation failure or a machine swapping itself to death.
MAX_IMAGES_PER_CLASS = 10_000
MAX_IMAGE_SIZE = 1_024  # side length in pixels
MAX_DATASET_BYTES = 17_179_869_184  # 16 GiB: the uint8 pixels of a whole data set held in memory


def default_data_root() -> Path:
    """Where downloadable data sets live: `$LEARNGENE_DATA` or `~/.cache/learngene/data`."""
    root = os.environ.get("LEARNGENE_DATA") or os.path.join(
        os.path.expanduser("~"), ".cache", "learngene", "data"
    )
    return Path(root)


def resize_images(images: torch.Tensor, size: int, chunk: int = 1024) -> torch.Tensor:
    """Resize uint8 (N, 3, H, W) to (N, 3, size, size) with antialiased bilinear interpolation.

    Works in chunks of `chunk` images, so the float copies stay small next to the uint8 result.
    """
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    for i in range(0, images.shape[0], chunk):
        part = F.interpolate(
            images[i : i + chunk].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[i : i + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


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
                                   ("image_size", image_size, 4, MAX_IMAGE_SIZE)):
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


def _decode(path: Path, size: int) -> torch.Tensor | None:
    """Decode one image file to uint8 (3, size, size): centre-cropped square, bilinear resize."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        return None  # unreadable, or a decompression bomb: skipped and counted like any bad file
    return data.view(size, size, 3).permute(2, 0, 1).contiguous()


def _scan_folder(path: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files, for every non-hidden sub-folder of `path`."""
    if not path.is_dir():
        raise DataError(
            f"image folder {path} does not exist or is not a folder; expected one sub-folder per class "
            "(e.g. folder:/data/pets with /data/pets/cat/*.jpg, /data/pets/dog/*.jpg)"
        )
    classes = {}
    try:
        for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(
                f
                for f in sub.iterdir()
                if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
            )
            if files:
                classes[sub.name] = files
    except OSError as exc:
        raise DataError(f"image folder {path} cannot be read: {exc.strerror or exc}") from None
    if not classes:
        raise DataError(
            f"no classes found in {path}: it needs one sub-folder per class holding image files "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    return classes


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


def read_split_file(path: str | os.PathLike, class_names: Sequence[str]) -> ClassSplit:
    """Read {"base": [names], "open_world": [names], "novel": [names]} into a validated ClassSplit."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise DataError(f"split file {path} does not exist") from None
    except (OSError, ValueError, RecursionError) as exc:  # also UnicodeDecodeError, too deeply nested
        raise DataError(f"split file {path} is not valid JSON: {exc}") from None
    index = {name: i for i, name in enumerate(class_names)}
    if not isinstance(raw, dict):
        raise DataError(f"split file {path} must hold an object with keys base, open_world, novel")
    ids = {}
    for key, names in raw.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"split file {path}: '{key}' must be a list of class names")
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DataError(
                f"split file {path}: unknown class name(s) {unknown[:5]} in '{key}'; "
                f"known classes start with {list(class_names)[:5]}"
            )
        ids[key] = [index[n] for n in names]
    try:
        split = ClassSplit.from_dict(ids)
        split.validate(len(class_names))
    except DataError as exc:
        raise DataError(f"split file {path}: {exc}") from None
    return split


FOLDER_CACHE_VERSION = 1  # bump when _decode changes what it makes of a file
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
    """(images, labels, skipped files) from a cache file, or None when missing or not consistent."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        images, labels, bad = obj["images"], obj["labels"], list(obj["skipped"])
        ok = (obj.get("names") == names and images.dtype == torch.uint8 and images.ndim == 4
              and labels.shape == (images.shape[0],) and obj.get("checksum") == _checksum(images))
        return (images, labels, bad) if ok else None
    except Exception:  # missing, truncated, corrupt: decode again
        return None


def _write_folder_cache(path: Path, images: torch.Tensor, labels: torch.Tensor, names: list[str],
                        bad: list[str]) -> None:
    """Write atomically; a cache that cannot be written is silently not used."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save({"images": images, "labels": labels, "names": names, "skipped": bad,
                        "checksum": _checksum(images)}, f)
        os.replace(tmp, path)
    except (OSError, RuntimeError):
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return
    try:  # keep the newest few: a folder that changed leaves its old entry behind
        entries = sorted(path.parent.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in entries[FOLDER_CACHE_ENTRIES:]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass


def load_folder(
    path: str | os.PathLike, image_size: int = 32, images_per_class: int | None = None, cache: bool = True
) -> ImageSet:
    """Read an ImageFolder tree; undecodable files (decompression bombs included) are skipped and counted.

    The decoded set is cached under `$LEARNGENE_CACHE/folders/` (default ~/.cache/learngene), keyed by
    the folder's path and every file's name, size and modification time, so the next command that reads
    the same unchanged folder skips decoding. The class split is set by the caller.
    """
    check_request(images_per_class, image_size)
    root = Path(path).expanduser()
    classes = _scan_folder(root)
    check_memory(sum(len(f) if images_per_class is None else min(len(f), images_per_class)
                     for f in classes.values()), image_size)
    names = list(classes)
    key = _folder_key(root, classes, image_size, images_per_class) if cache else None
    cache_file = cache_dir() / "folders" / f"{key}.pt" if key else None
    found = _read_folder_cache(cache_file, names) if cache_file is not None and cache_file.is_file() else None
    if found is not None:
        stacked, label_t, bad = found
    else:
        images, labels, bad = [], [], []
        for c, files in enumerate(classes.values()):
            kept = 0
            for f in files:
                if images_per_class is not None and kept >= images_per_class:
                    break
                img = _decode(f, image_size)
                if img is None:
                    bad.append(str(f.relative_to(root)))
                    continue
                images.append(img)
                labels.append(c)
                kept += 1
        if not images:
            raise DataError(f"none of the image files under {root} could be decoded ({len(bad)} tried)")
        stacked, label_t = torch.stack(images), torch.tensor(labels)
        if cache_file is not None:
            _write_folder_cache(cache_file, stacked, label_t, names, bad)
    placeholder = ClassSplit((0,), (0,), (0,))
    meta = {"source": "folder", "root": str(root), "skipped_files": bad[:50], "from_cache": found is not None}
    return ImageSet(f"folder:{root.name}", stacked, label_t, names, placeholder, len(bad), meta)


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
        image_size: side length for "shapes" and "folder:" (CIFAR is resized if it differs from 32);
            at most `MAX_IMAGE_SIZE`, and all images together at most `MAX_DATASET_BYTES`.
        cache: read/write the generated ("shapes") or decoded ("folder:") tensors in the cache folder.
    """
    check_request(images_per_class, image_size)
    kind = spec.strip()
    if kind.lower() == "shapes":
        check_memory(NUM_CLASSES * (images_per_class or DEFAULT_IMAGES_PER_CLASS), image_size)
        ds = load_shapes(seed=seed, images_per_class=images_per_class, image_size=image_size, cache=cache)
    elif kind.lower() in ("cifar100", "cifar-100"):
        check_memory(100 * min(600, images_per_class or 600), image_size)
        ds = load_cifar100(root=root, download=download, images_per_class=images_per_class)
        ds.images = resize_images(ds.images, image_size)
    elif kind.lower().startswith("folder:") and kind[7:].strip():
        ds = load_folder(kind[7:].strip(), image_size=image_size, images_per_class=images_per_class,
                         cache=cache)
        if split_file is None:
            ds.split = ratio_split(ds.num_classes, split_ratio, seed)
    else:
        raise ConfigError(f"unknown data set {spec!r}; choose one of: {', '.join(DATASETS)}")
    if split_file is not None:
        ds.split = read_split_file(split_file, ds.class_names)
    ds.split.validate(ds.num_classes)
    ds.meta.update({"spec": spec, "split": ds.split.to_dict()})
    return ds
