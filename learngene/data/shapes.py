"""The embedded default data set "shapes": 100 procedurally generated classes, no download.

A class is a combination of two parts: a *shape* (10 kinds, e.g. triangle, ring, arrow) and a
*pattern* filling it (10 kinds, e.g. striped, dotted, hollow). The 10 x 10 grid of combinations is
split by class into 64 base / 16 open-world / 20 novel classes so that every shape and every
pattern appears in at least six base classes, while the open-world and novel classes are *new
combinations* of known parts: knowledge about parts learned on base classes transfers.

Colour is never part of a class. Every image has random nuisances: position, scale, rotation,
aspect ratio, foreground/pattern/background colours, a background gradient, an optional distractor
blob, brightness/contrast/white-balance jitter and pixel noise. Generation is vectorised over
batches and deterministic: the same (seed, images_per_class, image_size) gives bit-identical tensors.
Results are cached under `$LEARNGENE_CACHE` (default `~/.cache/learngene`).

Difficulty, measured on 4 novel 5-way 10-shot tasks (100 test images per class): a 3-layer CNN from
random weights reaches ~40%, logistic regression on pixels ~24%, while the same CNN trained briefly
on base classes (120 images per class, 8 epochs) and frozen, with only a new linear head, reaches ~72%.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from learngene.data import _render as render
from learngene.data.base import ClassSplit, ImageSet, derive_seed
from learngene.data.stream import RawImages, stored_tensor_offset
from learngene.errors import ConfigError

GENERATOR_VERSION = 3
SHAPES: tuple[str, ...] = tuple(render.SHAPE_FNS)
PATTERNS: tuple[str, ...] = tuple(render.PATTERN_FNS)
NUM_CLASSES = len(SHAPES) * len(PATTERNS)
DEFAULT_IMAGES_PER_CLASS = 600
_ROUNDS_PER_BATCH = 5  # one round = one image of every class; small batches avoid page-fault costs
# Cache files whose checksum this process checked, by (path, inode, size, mtime): an unchanged file is not read
# again, also in a job forked from the fork server that checked it (`learngene.jobs.forkserver`).
_VERIFIED: set[tuple[str, int, int, int]] = set()


def _part_of_cell(shape: int, pattern: int) -> str:
    """Which split part the (shape, pattern) combination belongs to (two diagonals novel, ...)."""
    diag = (pattern - shape) % len(PATTERNS)
    if diag in (3, 7):
        return "novel"
    if diag == 5 or (diag == 1 and shape < 6):
        return "open"
    return "base"


def class_parts() -> list[tuple[int, int]]:
    """(shape index, pattern index) of every class id: base ids first, then open-world, then novel."""
    cells = [(s, p) for s in range(len(SHAPES)) for p in range(len(PATTERNS))]
    return [c for part in ("base", "open", "novel") for c in cells if _part_of_cell(*c) == part]


def class_names() -> list[str]:
    """Human-readable names such as "striped triangle", indexed by class id."""
    return [f"{PATTERNS[p]} {SHAPES[s]}" for s, p in class_parts()]


def default_split() -> ClassSplit:
    """The fixed split of "shapes": ids 0-63 base, 64-79 open-world, 80-99 novel."""
    parts = [_part_of_cell(*c) for c in class_parts()]
    ids = {p: tuple(i for i, q in enumerate(parts) if q == p) for p in ("base", "open", "novel")}
    return ClassSplit(base=ids["base"], open_world=ids["open"], novel=ids["novel"])


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def _sample_colours(gen: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """Foreground, pattern and two background colours (B, 3).

    The background is dark or light (50/50) and the foreground brightness is chosen on the other
    side, so the silhouette always has luminance contrast; the pattern colour differs in hue.
    """
    dark_bg = torch.rand(n, generator=gen) < 0.5
    hue = torch.rand(n, generator=gen)
    fg_v = torch.where(dark_bg, _uniform(gen, n, 0.65, 1.0), _uniform(gen, n, 0.25, 0.6))
    fg = render.hsv_to_rgb(hue, _uniform(gen, n, 0.5, 1.0), fg_v)
    hue2 = torch.remainder(hue + _uniform(gen, n, 0.25, 0.75), 1.0)
    second = render.hsv_to_rgb(hue2, _uniform(gen, n, 0.5, 1.0), _uniform(gen, n, 0.35, 1.0))
    bg_hue = torch.rand(n, generator=gen)
    bg_v = torch.where(dark_bg, _uniform(gen, n, 0.05, 0.3), _uniform(gen, n, 0.8, 1.0))
    bg_s = _uniform(gen, n, 0.0, 0.4)
    bg1 = render.hsv_to_rgb(bg_hue, bg_s, bg_v)
    bg2_v = (bg_v + _uniform(gen, n, -0.15, 0.15)).clamp(0, 1)
    bg2 = render.hsv_to_rgb(torch.remainder(bg_hue + _uniform(gen, n, -0.15, 0.15), 1.0), bg_s, bg2_v)
    return {"fg": fg, "second": second, "bg1": bg1, "bg2": bg2}


def _sample_params(gen: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """All per-image nuisance parameters of one batch, drawn in a fixed order from `gen`."""
    scale = _uniform(gen, n, 0.5, 0.85)  # shape radius as a fraction of the half image
    reach = 1.0 - 0.85 * scale
    p = {
        "scale": scale,
        "tx": _uniform(gen, n, -1, 1) * reach,
        "ty": _uniform(gen, n, -1, 1) * reach,
        "theta": _uniform(gen, n, 0, 2 * math.pi),
        "aspect": torch.exp(_uniform(gen, n, -0.12, 0.12)),
        "period": _uniform(gen, n, 0.55, 0.75),
        "phase": torch.rand(n, generator=gen),
        "bg_angle": _uniform(gen, n, 0, 2 * math.pi),
        "distract": (torch.rand(n, generator=gen) < 0.35).float(),
        "d_square": torch.rand(n, generator=gen) < 0.5,
        "d_x": _uniform(gen, n, -0.85, 0.85),
        "d_y": _uniform(gen, n, -0.85, 0.85),
        "d_r": _uniform(gen, n, 0.05, 0.12),
        "d_rgb": render.hsv_to_rgb(
            torch.rand(n, generator=gen), torch.rand(n, generator=gen), _uniform(gen, n, 0.3, 1.0)
        ),
        "contrast": _uniform(gen, n, 0.8, 1.1),
        "brightness": _uniform(gen, n, -0.06, 0.06),
        "gain": _uniform(gen, 3 * n, 0.92, 1.08).view(n, 3),
        "noise": _uniform(gen, n, 0.0, 0.04),
    }
    p.update(_sample_colours(gen, n))
    return p


def _shape_and_pattern(
    labels: torch.Tensor, p: dict[str, torch.Tensor], size: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha (B, S, S) of the shape and pattern weight t (B, S, S) of the second colour."""
    n = labels.shape[0]
    table = torch.tensor(class_parts(), dtype=torch.long)  # (C, 2)
    shape_id, pattern_id = table[labels, 0], table[labels, 1]
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")  # (S, S) each
    view = (n, 1, 1)
    px, py = gx[None] - p["tx"].view(view), gy[None] - p["ty"].view(view)  # (B, S, S)
    cos, sin = torch.cos(p["theta"]).view(view), torch.sin(p["theta"]).view(view)
    sx, sy = (p["scale"] * p["aspect"]).view(view), (p["scale"] / p["aspect"]).view(view)
    x, y = (cos * px + sin * py) / sx, (cos * py - sin * px) / sy  # local shape coordinates
    eps = (2.0 / size) / p["scale"].view(view)  # one pixel in local units, (B, 1, 1)
    d = torch.empty(n, size, size)
    for k, fn in enumerate(render.SHAPE_FNS.values()):
        m = shape_id == k
        if m.any():
            d[m] = fn(x[m], y[m])
    alpha = render.soft(-d, eps)
    t = torch.zeros(n, size, size)
    for k, (name, fn) in enumerate(render.PATTERN_FNS.items()):
        m = pattern_id == k
        if not m.any():
            continue
        if fn is not None:
            t[m] = fn(x[m], y[m], p["period"][m].view(-1, 1, 1), p["phase"][m].view(-1, 1, 1), eps[m])
        elif name == "hollow":
            width = torch.clamp(0.24 * torch.ones_like(eps[m]), min=1.3 * eps[m])
            alpha[m] = alpha[m] * render.soft(d[m] + width, eps[m])
        elif name == "speckled":
            t[m] = render.speckle(int(m.sum()), size, gen)
    return alpha, t


def _jitter_colours(p: dict[str, torch.Tensor]) -> None:
    """Apply contrast/brightness/white-balance jitter to the colours (B, 3) in place.

    The jitter is affine per channel and every pixel is a convex mix of these colours, so jittering
    the colours equals jittering the image, at a fraction of the cost.
    """
    c, b = p["contrast"][:, None], p["brightness"][:, None]
    for key in ("fg", "second", "bg1", "bg2", "d_rgb"):
        p[key] = ((p[key] - 0.5) * c + 0.5 + b) * p["gain"]


def _background(p: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Gradient background (B, 3, S, S) with an optional distractor blob drawn on it."""
    n = p["scale"].shape[0]
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    view = (n, 1, 1)
    ramp = 0.5 + 0.5 * (torch.cos(p["bg_angle"]).view(view) * gx + torch.sin(p["bg_angle"]).view(view) * gy)
    bg = torch.addcmul(p["bg1"][:, :, None, None], (p["bg2"] - p["bg1"])[:, :, None, None], ramp[:, None])
    dx, dy = gx[None] - p["d_x"].view(view), gy[None] - p["d_y"].view(view)
    r = p["d_r"].view(view)
    d = torch.where(p["d_square"].view(view), torch.maximum(dx.abs(), dy.abs()) - r, torch.hypot(dx, dy) - r)
    a = (render.soft(-d, 2.0 / size) * p["distract"].view(view))[:, None]  # (B, 1, S, S)
    return bg.lerp_(p["d_rgb"][:, :, None, None].expand_as(bg), a)  # (B, 3, S, S)


def render_batch(labels: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Draw one image per label; returns uint8 (B, 3, size, size)."""
    n = labels.shape[0]
    p = _sample_params(gen, n)
    _jitter_colours(p)
    alpha, t = _shape_and_pattern(labels, p, size, gen)
    fg = torch.addcmul(p["fg"][:, :, None, None], (p["second"] - p["fg"])[:, :, None, None], t[:, None])
    img = _background(p, size).lerp_(fg, alpha[:, None])  # (B, 3, S, S)
    noise = torch.randn(img.shape, generator=gen)
    img.addcmul_(noise, p["noise"].view(n, 1, 1, 1))
    return img.mul_(255.0).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)


def generate_shapes(
    seed: int = 0, images_per_class: int = DEFAULT_IMAGES_PER_CLASS, image_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate the images (N, 3, S, S) uint8 and labels (N,) int64, class-interleaved.

    Image `r * 100 + c` is the r-th image of class c. Each batch of rounds is drawn in full from its
    own generator seeded by (seed, batch index), so a smaller `images_per_class` gives exactly the
    first rounds of a larger one (a prefix), and the result does not depend on the thread count.
    """
    if images_per_class < 1:
        raise ConfigError(f"images_per_class must be at least 1, got {images_per_class}")
    if not 8 <= image_size <= 256:
        raise ConfigError(f"image_size for shapes must be between 8 and 256 pixels, got {image_size}")
    images = torch.empty(images_per_class * NUM_CLASSES, 3, image_size, image_size, dtype=torch.uint8)
    labels = torch.arange(NUM_CLASSES).repeat(images_per_class)  # (N,)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small elementwise ops: one thread is faster than contended OpenMP
    try:
        batch_labels = torch.arange(NUM_CLASSES).repeat(_ROUNDS_PER_BATCH)
        for b, start in enumerate(range(0, images_per_class, _ROUNDS_PER_BATCH)):
            rounds = min(_ROUNDS_PER_BATCH, images_per_class - start)
            gen = torch.Generator().manual_seed(derive_seed(seed, GENERATOR_VERSION, b))
            lo, hi = start * NUM_CLASSES, (start + rounds) * NUM_CLASSES
            images[lo:hi] = render_batch(batch_labels, image_size, gen)[: hi - lo]  # always a full batch
    finally:
        torch.set_num_threads(threads)
    return images, labels


def cache_dir() -> Path:
    """Folder for generated data: `$LEARNGENE_CACHE` or `~/.cache/learngene`."""
    root = os.environ.get("LEARNGENE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "learngene")
    return Path(root) / "shapes"


def _cache_path(seed: int, images_per_class: int, image_size: int) -> Path:
    return cache_dir() / f"shapes-v{GENERATOR_VERSION}-seed{seed}-n{images_per_class}-s{image_size}.pt"


def is_cached(seed: int = 0, images_per_class: int = DEFAULT_IMAGES_PER_CLASS, image_size: int = 32) -> bool:
    """True if `load_shapes` with these settings would read a cache file rather than generate the images."""
    return _cache_path(seed, images_per_class, image_size).is_file()


def _checksum(images: torch.Tensor, chunk: int = 2048) -> int:
    """Sum of all pixel values, in chunks: a whole-tensor int64 sum would copy the set at 8x its size."""
    return sum(int(images[i:i + chunk].sum(dtype=torch.int64)) for i in range(0, len(images), chunk))


def stored_checksum(path: Path, nbytes: int, chunk: int = 1 << 22) -> int | None:
    """`_checksum` of the uint8 tensor of `nbytes` bytes that `torch.save` stored in the file `path`, read
    from the file in chunks (zip's own CRC is checked on the way); None when the file holds no such entry.

    Reading the file instead of the tensor keeps a memory-mapped cache (see `load_mapped`) from touching
    every page of the data: only the images a command really uses become resident."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if "/data/" in info.filename and info.file_size == nbytes and info.compress_type == zipfile.ZIP_STORED:
                total = 0
                with zf.open(info) as f:
                    while block := f.read(chunk):
                        total += int(np.frombuffer(block, np.uint8).sum(dtype=np.int64))
                return total
    return None


def load_mapped(path: Path) -> dict:
    """`torch.load` a cache file with its tensors memory-mapped (copy on write): pages are read when used."""
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def file_reader(path: Path, images: torch.Tensor) -> RawImages | None:
    """A `RawImages` reading `images` (memory-mapped from the `torch.save` file `path`) straight from the
    file, so `ImageSet.take` reads only the images asked for; None when the file's layout is not plain."""
    offset = stored_tensor_offset(path, images.nbytes)
    if offset is None or not images.is_contiguous():
        return None
    return RawImages(path, offset, images.shape[0], images.shape[-1])


def _read_cache(path: Path, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Return cached (images, labels), or None when missing, unreadable or inconsistent.

    The images stay memory-mapped from the file: a command that uses a few classes (a few-shot task)
    reads only their pages, not the whole data set."""
    try:
        st = path.stat()
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        obj = load_mapped(path)
        images, labels = obj["images"], obj["labels"]
        ok = (
            obj.get("version") == GENERATOR_VERSION
            and images.dtype == torch.uint8
            and tuple(images.shape) == (n, 3, size, size)
            and images.is_contiguous()
            and tuple(labels.shape) == (n,)
            and (key in _VERIFIED or stored_checksum(path, images.nbytes) == obj.get("checksum"))
        )
        if ok:
            _VERIFIED.add(key)
        return (images, labels) if ok else None
    except Exception:  # missing, truncated or corrupt: regenerate
        return None


def _write_cache(path: Path, images: torch.Tensor, labels: torch.Tensor) -> bool:
    """Write atomically (temp file + os.replace); return False if the cache is not writable."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            payload = {"version": GENERATOR_VERSION, "images": images, "labels": labels}
            payload["checksum"] = _checksum(images)
            torch.save(payload, f)
        os.replace(tmp, path)
    except (OSError, RuntimeError):  # read-only or full disk: run without a cache
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False
    for stale in path.parent.glob("shapes-v*.pt"):  # files of older generator versions are dead weight
        if not stale.name.startswith(f"shapes-v{GENERATOR_VERSION}-"):
            with contextlib.suppress(OSError):
                stale.unlink()
    return True


def load_shapes(
    seed: int = 0, images_per_class: int | None = None, image_size: int = 32, cache: bool = True
) -> ImageSet:
    """The "shapes" ImageSet, read from the cache or generated (and then cached)."""
    n_per = DEFAULT_IMAGES_PER_CLASS if images_per_class is None else int(images_per_class)
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    path = _cache_path(seed, n_per, image_size)
    t0 = time.perf_counter()
    found = _read_cache(path, n_per * NUM_CLASSES, image_size) if cache else None
    reader = None
    if found is None:
        images, labels = generate_shapes(seed, n_per, image_size)
        cached = _write_cache(path, images, labels) if cache else False
    else:
        (images, labels), cached = found, True
        reader = file_reader(path, images)
    meta = {
        "source": "shapes",
        "seed": seed,
        "images_per_class": n_per,
        "generator_version": GENERATOR_VERSION,
        "parts": {"shape": list(SHAPES), "pattern": list(PATTERNS)},
        "class_parts": [[SHAPES[s], PATTERNS[p]] for s, p in class_parts()],
        "from_cache": found is not None,
        "cache_path": str(path) if cached else None,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return ImageSet("shapes", images, labels, class_names(), default_split(), 0, meta, reader=reader)
