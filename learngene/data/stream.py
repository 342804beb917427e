"""Images read by index instead of held in memory: the streaming side of `ImageSet`.

An `ImageSet` normally holds all its images as one uint8 tensor. For data sets that do not fit (a
folder of 100,000 photos, CIFAR-100 at 224 px) its `images` is a `LazyImages` instead: it has the
tensor's `shape`, `dtype` and `len`, and indexing it reads only what is asked for:

* ``images[i]`` (an int) and ``images[idx]`` (a LongTensor, list or bool mask) return uint8 tensors,
  like advanced indexing on a tensor (a copy of just those images);
* ``images[a:b]`` returns a lazy view (like basic indexing on a tensor returns a view), and
  ``images.subset(idx)`` a lazy view of any indices; ``images.load()`` reads everything.

Kinds:

* `FolderImages`: the files of an image folder, decoded when first asked for, then kept in a decoded-image
  cache on disk (`$LEARNGENE_CACHE/stream/`): one sparse raw file per folder and size, written image by
  image, so the cache holds only the images some command used, and a second epoch reads raw pixels.
* `RawImages`: uint8 images stored back to back in a file (the data part of a `torch.save` file, as the
  shapes cache is), read with `pread`: a few-shot task reads its few hundred images, nothing else.
* `ResizedImages`: another set's images resized when read (CIFAR-100's 32 px images at --img-size 224
  stay 32 px in memory).
* `SubsetImages`: a view of some indices of another lazy set (what a slice or `subset` returns).

Training feeds a lazy set through a torch `DataLoader` with worker processes (`batch_loader`), so the
memory a run needs grows with the batch, not with the data set.
"""

from __future__ import annotations

import contextlib
import operator
import os
import struct
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from learngene.errors import DataError

STREAM_CACHE_VERSION = 2  # bump when `decode_image` changes what it makes of a file
STREAM_CACHE_SETS = 4  # decoded-image caches kept (one per folder and image size), newest first
STREAM_CACHE_MAX_BYTES = 8 * 2**30  # a set larger than this when decoded is not cached (decoded on every read)
FILL_VALUE = 128  # an image that stopped decoding after the folder was indexed reads as mid-grey
_IOV_MAX = 1024  # buffers per preadv call
_STATE_EMPTY, _STATE_DONE, _STATE_BAD = 0, 1, 2


# ------------------------------------------------------------------ decoding and resizing


def decode_or_reason(path: Path, size: int) -> torch.Tensor | str:
    """Decode one image file to uint8 (3, size, size): every Pillow mode made 8-bit RGB (see
    `learngene.data._decode`), centre-cropped square, resized once from the file's native resolution to
    `size` (bilinear). A string saying why when it cannot be (truncated, a decompression bomb, a mode refused)."""
    from PIL import Image

    from learngene.data._decode import to_rgb

    try:
        with Image.open(path) as im:
            im.load()
            rgb = to_rgb(im)
            if isinstance(rgb, str):
                return rgb
            w, h = rgb.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            rgb = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
            data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError) as exc:
        return _failure(exc, "cannot be decoded")
    return data.view(size, size, 3).permute(2, 0, 1).contiguous()


def _failure(exc: Exception, what: str) -> str:
    """The reason, in a few words, that Pillow could not read a file."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read"
    if isinstance(exc, Image.DecompressionBombError):
        return "too many pixels (a decompression bomb?)"
    return f"{what}: {' '.join(str(exc).split())[:80] or type(exc).__name__}"


def decode_image(path: Path, size: int) -> torch.Tensor | None:
    """`decode_or_reason` without the reason: None when the file cannot be decoded."""
    out = decode_or_reason(path, size)
    return None if isinstance(out, str) else out


# the last bytes a complete file of each format ends with, looked for in its last KiB
_TRAILERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND", "GIF": b"\x3b"}


def header_or_reason(path: Path) -> str | None:
    """Why `path` cannot be used as an image, from its header and (JPEG, PNG, GIF) whether the file is
    complete; None when it looks fine. Cheap: no pixels decoded."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            fmt = im.format
        if w <= 0 or h <= 0:
            return "an image without pixels"
        trailer = _TRAILERS.get(fmt or "")
        if trailer is not None:
            with open(path, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 1024))
                if trailer not in f.read():
                    return f"a truncated {fmt} file (it does not end as a complete one)"
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError) as exc:
        return _failure(exc, "cannot be opened")
    return None


def image_header_ok(path: Path) -> bool:
    """Whether `path` opens as an image and is complete (see `header_or_reason`)."""
    return header_or_reason(path) is None


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


# ------------------------------------------------------------------ the lazy image sets


def _as_index(key: Any, n: int) -> torch.Tensor:
    """A LongTensor / list / bool mask as int64 indices in [0, n) (negative ones wrapped); IndexError else."""
    idx = torch.as_tensor(key)
    if idx.dtype == torch.bool:
        if idx.shape != (n,):
            raise IndexError(f"a boolean mask of shape {tuple(idx.shape)} does not match {n} images")
        return idx.nonzero().flatten()
    if idx.is_floating_point() or idx.is_complex():
        raise IndexError(f"images are indexed by integers, got {idx.dtype}")
    idx = idx.long().flatten() if idx.ndim else idx.long().view(1)
    idx = torch.where(idx < 0, idx + n, idx)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"image index out of range for {n} images")
    return idx


def _scalar_index(key: Any) -> int | None:
    """`key` as one int when it is a single integer (Python, numpy or a 0-d tensor), else None."""
    if isinstance(key, bool | list | tuple | slice):
        return None
    if isinstance(key, torch.Tensor):
        if key.ndim or key.is_floating_point() or key.dtype == torch.bool:
            return None
        return int(key)
    try:
        return operator.index(key)
    except TypeError:
        return None


class LazyImages:
    """uint8 images (N, 3, S, S) read when indexed; see the module doc for what indexing returns."""

    dtype = torch.uint8
    ndim = 4
    device = torch.device("cpu")

    def __init__(self, n: int, size: int):
        self.shape = torch.Size((int(n), 3, int(size), int(size)))

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def image_bytes(self) -> int:
        """Bytes of one image."""
        return 3 * int(self.shape[-1]) ** 2

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        """The images at int64 indices `idx` (all in range) as a new uint8 tensor (len(idx), 3, S, S)."""
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Any:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        if isinstance(key, slice):
            view = self.subset(torch.arange(len(self))[key])
            if rest:
                raise IndexError("a slice of lazy images takes no further indices; index it with a tensor first")
            return view
        i = _scalar_index(key)
        if i is not None:
            one = self._fetch(_as_index([i], len(self)))[0]
            return one[rest] if rest else one
        out = self._fetch(_as_index(key, len(self)))
        return out[(slice(None), *rest)] if rest else out

    def subset(self, index: Any) -> SubsetImages:
        """A lazy view of the images at `index` (in that order)."""
        return SubsetImages(self, _as_index(index, len(self)))

    def load(self, chunk: int = 1024) -> torch.Tensor:
        """All images as one uint8 tensor (reads everything: for small sets)."""
        out = torch.empty(self.shape, dtype=torch.uint8)
        for i in range(0, len(self), chunk):
            out[i:i + chunk] = self._fetch(torch.arange(i, min(i + chunk, len(self))))
        return out

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """`load()` then `Tensor.to`: code written for in-memory images still works (reading everything)."""
        return self.load().to(*args, **kwargs)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, size={self.shape[-1]})"


class SubsetImages(LazyImages):
    """The images of `base` at `index`, read from `base` when indexed."""

    def __init__(self, base: LazyImages, index: torch.Tensor):
        if isinstance(base, SubsetImages):  # a view of a view reads the original directly
            base, index = base.base, base.index[index]
        super().__init__(len(index), base.shape[-1])
        self.base, self.index = base, index.long()

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        return self.base._fetch(self.index[idx])


class _FileHandle:
    """An fd opened on first use in each process (a forked DataLoader worker or a Ray worker opens its own)."""

    def __init__(self, path: Path, flags: int = os.O_RDONLY):
        self.path, self.flags = Path(path), flags
        self._fd: int | None = None
        self._pid = -1

    def fd(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, self.flags | getattr(os, "O_CLOEXEC", 0), 0o644)
            self._pid = os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "flags": self.flags}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["flags"])

    def __del__(self) -> None:
        self.close()


def _runs(idx: torch.Tensor) -> Iterator[tuple[int, list[int]]]:
    """(first index, output positions) of each run of consecutive indices (in index order), at most _IOV_MAX long."""
    values, positions = torch.sort(idx, stable=True)
    vals, pos = values.tolist(), positions.tolist()
    i = 0
    while i < len(vals):
        j = i + 1
        while j < len(vals) and j - i < _IOV_MAX and vals[j] == vals[j - 1] + 1:
            j += 1
        yield vals[i], pos[i:j]
        i = j


def _read_rows(fd: int, out: torch.Tensor, idx: torch.Tensor, offset: int, row_bytes: int, what: str) -> None:
    """pread the rows `idx` of a file of `row_bytes`-byte rows starting at `offset` into `out`'s rows."""
    flat = out.view(len(idx), -1).numpy()
    for first, positions in _runs(idx):
        want = row_bytes * len(positions)
        got = os.preadv(fd, [memoryview(flat[p]) for p in positions], offset + first * row_bytes)
        if got != want:
            raise DataError(f"{what} is shorter than expected (read {got} of {want} bytes at image {first}); "
                            "delete it to make it again")


class RawImages(LazyImages):
    """`n` uint8 images of `size` px stored back to back in the file `path` from byte `offset`."""

    def __init__(self, path: str | os.PathLike, offset: int, n: int, size: int):
        super().__init__(n, size)
        self.path, self.offset = Path(path), int(offset)
        self._file = _FileHandle(self.path)

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(idx), *self.shape[1:], dtype=torch.uint8)
        if len(idx):
            _read_rows(self._file.fd(), out, idx, self.offset, self.image_bytes, f"the image file {self.path}")
        return out


def stored_tensor_offset(path: str | os.PathLike, nbytes: int) -> int | None:
    """Byte offset of the uncompressed data of the `nbytes`-byte tensor that `torch.save` stored in `path`
    (a zip file), or None when it holds no such entry (the file's tensors are then read the usual way)."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = next((i for i in zf.infolist() if "/data/" in i.filename and i.file_size == nbytes
                         and i.compress_type == zipfile.ZIP_STORED), None)
        if info is None:
            return None
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        return info.header_offset + 30 + name_len + extra_len
    except (OSError, zipfile.BadZipFile, ValueError):
        return None


class ResizedImages(LazyImages):
    """The images of `source` (a uint8 tensor or lazy set) resized to `size` px when read (antialiased
    bilinear, as `resize_images`): a set keeps its native resolution in memory and is read at `size`."""

    def __init__(self, source: torch.Tensor | LazyImages, size: int):
        super().__init__(len(source), size)
        self.source = source

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        return resize_images(self.source[idx], int(self.shape[-1]))


class FolderImages(LazyImages):
    """The image files `files` (relative to `root`) decoded to `size` px when first read, then read back
    from the decoded-image cache folder `cache` (None: decoded on every read).

    The cache is two sparse files: `pixels.u8` (image i at byte i * 3 * size^2) and `state.u8` (one byte
    per image: 0 not decoded yet, 1 decoded, 2 undecodable). A process writes an image's pixels before its
    state byte, so a reader (another DataLoader worker, another command) never sees half an image; two
    processes decoding the same image write the same bytes. A file that does not decode although its
    header and ending looked right when the folder was indexed reads as mid-grey with a warning.
    """

    def __init__(self, root: str | os.PathLike, files: Sequence[str], size: int, cache: str | os.PathLike | None):
        super().__init__(len(files), size)
        self.root = Path(root)
        self.files = list(files)
        self.cache = Path(cache) if cache is not None else None
        self._pixels = self._state = None
        if self.cache is not None:
            self._pixels = _FileHandle(self.cache / "pixels.u8", os.O_RDWR | os.O_CREAT)
            self._state = _FileHandle(self.cache / "state.u8", os.O_RDWR | os.O_CREAT)

    def _open_cache(self) -> tuple[int, int] | None:
        if self.cache is None:
            return None
        try:
            fresh = self._pixels._fd is None or self._pixels._pid != os.getpid()
            pfd, sfd = self._pixels.fd(), self._state.fd()
            if fresh:  # sparse: the sizes cost no disk until images are written
                if os.fstat(pfd).st_size < len(self) * self.image_bytes:
                    os.ftruncate(pfd, len(self) * self.image_bytes)
                if os.fstat(sfd).st_size < len(self):
                    os.ftruncate(sfd, len(self))
            return pfd, sfd
        except OSError:  # a read-only or full cache: decode every time
            self.cache = None
            return None

    def _decode(self, i: int) -> torch.Tensor | None:
        img = decode_image(self.root / self.files[i], int(self.shape[-1]))
        if img is None:
            warnings.warn(f"{self.root / self.files[i]} could not be decoded (when the folder was indexed, only its "
                          "header and ending were checked); it reads as a grey image", RuntimeWarning, stacklevel=3)
        return img

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        out = torch.empty(len(idx), *self.shape[1:], dtype=torch.uint8)
        fds = self._open_cache()
        if fds is None:
            for p, i in enumerate(idx.tolist()):
                img = self._decode(i)
                out[p] = FILL_VALUE if img is None else img
            return out
        pfd, sfd = fds
        nbytes = self.image_bytes
        done, todo = [], []
        for p, i in enumerate(idx.tolist()):
            state = os.pread(sfd, 1, i)
            (done if state == bytes([_STATE_DONE]) else todo).append((p, i, state))
        if done:
            positions = torch.tensor([p for p, _, _ in done])
            rows = torch.empty(len(done), *self.shape[1:], dtype=torch.uint8)
            _read_rows(pfd, rows, torch.tensor([i for _, i, _ in done]), 0, nbytes,
                       f"the decoded-image cache {self.cache}")
            out[positions] = rows
        for p, i, state in todo:
            if state == bytes([_STATE_BAD]):
                out[p] = FILL_VALUE
                continue
            img = self._decode(i)
            if img is None:
                out[p] = FILL_VALUE
                self._write(sfd, bytes([_STATE_BAD]), i)
                continue
            out[p] = img
            if self._write(pfd, img.numpy().tobytes(), i * nbytes):
                self._write(sfd, bytes([_STATE_DONE]), i)
        return out

    def _write(self, fd: int, data: bytes, offset: int) -> bool:
        try:
            return os.pwrite(fd, data, offset) == len(data)
        except OSError:  # disk full: this image stays undecoded in the cache
            return False

    def cached_count(self) -> int:
        """How many images the decoded-image cache holds (for reports and tests)."""
        fds = self._open_cache()
        if fds is None:
            return 0
        return os.pread(fds[1], len(self), 0).count(bytes([_STATE_DONE]))


def stream_cache_root() -> Path:
    """Where decoded-image caches and folder indexes live: `$LEARNGENE_CACHE/stream` (default ~/.cache/learngene)."""
    root = os.environ.get("LEARNGENE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "learngene")
    return Path(root) / "stream"


def decoded_cache_dir(key: str, size: int, n: int) -> Path | None:
    """The decoded-image cache folder of folder `key` at `size` px (None when `n` images are too many to
    cache, or the cache root cannot be made); marks it as the newest and drops the oldest beyond
    `STREAM_CACHE_SETS`."""
    if n * 3 * size * size > STREAM_CACHE_MAX_BYTES:
        return None
    root = stream_cache_root()
    path = root / f"{key}-v{STREAM_CACHE_VERSION}-s{size}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        os.utime(path)
    except OSError:
        return None
    with contextlib.suppress(OSError):
        sets = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in sets[STREAM_CACHE_SETS:]:
            for f in stale.iterdir():
                f.unlink(missing_ok=True)
            stale.rmdir()
    return path


# ------------------------------------------------------------------ feeding a training loop


def loader_workers() -> int:
    """DataLoader worker processes for lazy sets: `$LEARNGENE_LOADER_WORKERS`, else min(4, CPU cores)."""
    env = os.environ.get("LEARNGENE_LOADER_WORKERS", "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            pass
    return max(1, min(4, os.cpu_count() or 1))


class _Batches(torch.utils.data.Dataset):
    """A map-style dataset whose items are whole batches: item `idx` (a LongTensor) is `images[idx]`."""

    def __init__(self, images: LazyImages):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.images[idx]


def batch_loader(images: LazyImages, batches: Sequence[torch.Tensor], *, workers: int | None = None,
                 pin_memory: bool = False) -> Iterable[torch.Tensor]:
    """The uint8 images of each index batch in `batches`, in order, read by a torch DataLoader with
    `workers` worker processes (default `loader_workers()`; 0: read in this process)."""
    workers = loader_workers() if workers is None else workers
    batches = [torch.as_tensor(b, dtype=torch.long).cpu() for b in batches]
    if workers == 0 or len(batches) <= 1:
        return (images[b] for b in batches)
    return torch.utils.data.DataLoader(_Batches(images), sampler=batches, batch_size=None,
                                       num_workers=min(workers, len(batches)), pin_memory=pin_memory,
                                       prefetch_factor=2)
