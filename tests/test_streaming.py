"""Data that streams: lazy image sets, streamed folders with their decoded-image cache
on disk, tasks that read only their own images, the memory-mapped shapes cache and the DataLoader path
of the Trainer (the same weights as in memory)."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from learngene.data import load_dataset, sample_task, sample_tasks
from learngene.data import sources as sources_module
from learngene.data.shapes import _cache_path
from learngene.data.stream import (
    FILL_VALUE,
    FolderImages,
    LazyImages,
    RawImages,
    ResizedImages,
)


@pytest.fixture(autouse=True)
def _cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path / "cache"))


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """6 classes x 7 random-noise images of 40x48 px (so the centre crop matters), one broken file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for c in range(6):
        for i in range(7):
            _png(root / f"class{c}" / f"{i:02d}.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (root / "class2" / "zz-broken.png").write_bytes(b"not a png at all")
    return root


# --- lazy image sets ------------------------------------------------------------------------------


class _Counting(LazyImages):
    """Images i = constant i, recording every index read: checks what indexing reads."""

    def __init__(self, n: int, size: int = 4):
        super().__init__(n, size)
        self.read: list[int] = []

    def _fetch(self, idx: torch.Tensor) -> torch.Tensor:
        self.read += idx.tolist()
        return idx.to(torch.uint8).view(-1, 1, 1, 1).expand(-1, *self.shape[1:]).clone()


def test_lazy_indexing_reads_only_what_is_asked_for_like_a_tensor() -> None:
    imgs = _Counting(10)
    full = torch.arange(10, dtype=torch.uint8).view(-1, 1, 1, 1).expand(10, 3, 4, 4)
    assert imgs.shape == full.shape and imgs.dtype == torch.uint8 and imgs.ndim == 4 and len(imgs) == 10
    assert torch.equal(imgs[3], full[3]) and torch.equal(imgs[-1], full[-1]) and imgs.read == [3, 9]
    idx = torch.tensor([7, 2, 2, 0])
    assert torch.equal(imgs[idx], full[idx]) and torch.equal(imgs[[1, 5]], full[[1, 5]])
    mask = torch.zeros(10, dtype=torch.bool)
    mask[[4, 6]] = True
    assert torch.equal(imgs[mask], full[mask]) and torch.equal(imgs[idx, 1], full[idx, 1])
    imgs.read.clear()
    view = imgs[2:8:2]  # a slice is a view: nothing read yet
    assert isinstance(view, LazyImages) and len(view) == 3 and imgs.read == []
    assert torch.equal(view[torch.tensor([2, 0])], full[[6, 2]]) and imgs.read == [6, 2]
    sub = view.subset([1])
    assert torch.equal(sub.load(), full[[4]]) and sub.base is imgs  # a view of a view reads the original
    assert torch.equal(imgs.to("cpu"), full)
    for bad in (10, -11, torch.tensor([0, 10])):
        with pytest.raises(IndexError):
            imgs[bad]
    with pytest.raises(IndexError):
        imgs[torch.tensor([0.5])]


def test_raw_images_read_rows_of_a_file_in_any_order(tmp_path: Path) -> None:
    data = torch.randint(0, 256, (50, 3, 5, 5), dtype=torch.uint8)
    path = tmp_path / "raw.u8"
    path.write_bytes(b"head" + data.numpy().tobytes())
    raw = RawImages(path, 4, 50, 5)
    idx = torch.tensor([49, 0, 1, 2, 2, 30, 31, 7])
    assert torch.equal(raw[idx], data[idx]) and torch.equal(raw.load(), data)
    short = RawImages(path, 4, 60, 5)
    with pytest.raises(Exception, match="shorter than expected"):
        short[torch.tensor([59])]


# --- the shapes cache is memory-mapped; a task reads only its images ---------------------------------


def test_shapes_from_the_cache_are_mapped_and_take_reads_the_file() -> None:
    first = load_dataset("shapes", images_per_class=30)
    assert not first.meta["from_cache"] and first.reader is None
    ds = load_dataset("shapes", images_per_class=30)
    assert ds.meta["from_cache"] and isinstance(ds.reader, RawImages) and torch.equal(ds.images, first.images)
    idx = torch.tensor([2999, 0, 5, 5, 1500])
    assert torch.equal(ds.take(idx), first.images[idx])
    task = sample_task(ds, "novel", 5, 5, seed=3, test_per_class=4)
    assert torch.equal(task.train_x, first.images[task.train_index])
    assert torch.equal(task.test_x, first.images[task.test_index])
    ds.images = ds.images.clone()  # other images: the file no longer holds them
    assert ds.reader is None


def test_a_flipped_pixel_in_the_shapes_cache_is_caught_and_the_set_made_again() -> None:
    good = load_dataset("shapes", images_per_class=3)
    path = _cache_path(0, 3, 32)
    raw = bytearray(path.read_bytes())
    reader = load_dataset("shapes", images_per_class=3).reader
    raw[reader.offset + 1000] ^= 0xFF  # one byte of the pixel data; the zip structure stays valid
    path.write_bytes(bytes(raw))
    again = load_dataset("shapes", images_per_class=3)
    assert not again.meta["from_cache"] and torch.equal(again.images, good.images)


# --- streamed folders -----------------------------------------------------------------------------


def test_a_streamed_folder_reads_the_same_images_as_one_in_memory(folder: Path) -> None:
    eager = load_dataset(f"folder:{folder}", seed=1, image_size=24, stream=False)
    lazy = load_dataset(f"folder:{folder}", seed=1, image_size=24, stream=True)
    assert lazy.streamed and not eager.streamed and isinstance(lazy.images, FolderImages)
    assert lazy.class_names == eager.class_names and torch.equal(lazy.labels, eager.labels)
    assert lazy.split == eager.split and lazy.skipped == eager.skipped == 1
    assert lazy.meta["skipped_files"] == eager.meta["skipped_files"]
    assert [f.split(" (")[0] for f in lazy.meta["skipped_files"]] == ["class2/zz-broken.png"]
    assert lazy.images.shape == eager.images.shape == (42, 3, 24, 24)
    assert lazy.images.cached_count() == 0  # loading read labels only
    idx = torch.tensor([41, 0, 13, 13, 7])
    assert torch.equal(lazy.images[idx], eager.images[idx])
    assert lazy.images.cached_count() == 4  # decoded once each, into the cache on disk
    assert torch.equal(lazy.images[idx], eager.images[idx])  # now read back from the cache
    assert torch.equal(lazy.images.load(), eager.images)
    summary = lazy.summary()
    assert summary["streamed"] and summary["num_images"] == 42 and summary["image_size"] == 24
    capped = load_dataset(f"folder:{folder}", images_per_class=3, stream=True)
    assert len(capped) == 18 and set(capped.per_class_counts().values()) == {3}


def test_the_index_and_decoded_cache_are_reused_and_a_changed_folder_is_read_again(folder: Path) -> None:
    first = load_dataset(f"folder:{folder}", stream=True)
    assert not first.meta["from_cache"]
    first.images[torch.arange(10)]
    second = load_dataset(f"folder:{folder}", stream=True)
    assert second.meta["from_cache"] and second.images.cached_count() == 10
    assert second.meta["decoded_cache"] == first.meta["decoded_cache"]
    other_size = load_dataset(f"folder:{folder}", stream=True, image_size=16)
    assert other_size.meta["decoded_cache"] != first.meta["decoded_cache"]
    assert other_size.images.cached_count() == 0
    target = folder / "class0" / "00.png"
    _png(target, np.zeros((40, 48, 3), dtype=np.uint8))
    os.utime(target, ns=(1, 1))
    changed = load_dataset(f"folder:{folder}", stream=True)
    assert not changed.meta["from_cache"] and changed.meta["decoded_cache"] != first.meta["decoded_cache"]
    assert int(changed.images[0].max()) == 0


def test_a_file_that_stops_decoding_after_indexing_reads_grey_with_a_warning(folder: Path) -> None:
    ds = load_dataset(f"folder:{folder}", stream=True)
    victim = folder / ds.images.files[5]
    victim.write_bytes(victim.read_bytes()[:60])  # the header survives, the pixels do not
    with pytest.warns(RuntimeWarning, match="could not be decoded"):
        img = ds.images[5]
    assert int(img.min()) == int(img.max()) == FILL_VALUE
    assert torch.equal(ds.images[5], img)  # marked in the cache: not decoded again


def test_tasks_on_a_streamed_folder_decode_only_their_own_images(folder: Path) -> None:
    ds = load_dataset(f"folder:{folder}", stream=True, split_ratio=(0.34, 0.33, 0.33))
    tasks = sample_tasks(ds, 2, "novel", 2, 2, seed=0, test_per_class=2)
    assert ds.images.cached_count() == 0  # checking the tasks reads labels only
    task = tasks[0]
    used = set(task.train_index.tolist()) | set(task.test_index.tolist())
    assert ds.images.cached_count() == len(used) == 8
    eager = load_dataset(f"folder:{folder}", stream=False, split_ratio=(0.34, 0.33, 0.33))
    assert torch.equal(task.train_x, eager.images[task.train_index])
    assert torch.equal(task.test_x, eager.images[task.test_index])


def test_data_info_on_a_streamed_folder_reads_no_pixels(folder: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from learngene.cli import main

    monkeypatch.setattr(sources_module, "STREAM_ABOVE_BYTES", 0)  # every folder streams
    assert main(["data", "info", "--dataset", f"folder:{folder}", "--img-size", "64", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["streamed"] and info["num_images"] == 42 and info["image_size"] == 64 and info["skipped"] == 1
    ds = load_dataset(f"folder:{folder}", image_size=64)
    assert ds.streamed and ds.images.cached_count() == 0
    assert main(["data", "info", "--dataset", f"folder:{folder}"]) == 0
    assert "streamed from disk" in capsys.readouterr().out


def test_the_trainer_on_a_streamed_folder_gives_the_in_memory_weights(folder: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from learngene.models import create_model
    from learngene.train.accumulate import base_data
    from learngene.train.config import TrainConfig
    from learngene.train.trainer import Trainer

    monkeypatch.setenv("LEARNGENE_LOADER_WORKERS", "2")  # real worker processes
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, device="cpu", eval_batch_size=5)
    results = []
    for stream in (False, True):
        ds = load_dataset(f"folder:{folder}", stream=stream, image_size=16)
        x_train, y_train, x_test, y_test = base_data(ds, cfg, 2)
        assert isinstance(x_train, LazyImages) == stream
        torch.manual_seed(0)
        model = create_model("lg_resnet_mini", len(ds.split.base), img_size=16)
        trainer = Trainer(model, cfg, x_train, y_train, x_test, y_test)
        assert trainer.streamed == stream
        history = trainer.run()
        results.append((history, [p.detach().clone() for p in model.parameters()]))
        if stream:
            assert ds.images.cached_count() == len(x_train) + len(x_test)  # read through the DataLoader
    (h0, w0), (h1, w1) = results
    assert [r["train_loss"] for r in h0] == [r["train_loss"] for r in h1]
    assert [r["test_acc"] for r in h0] == [r["test_acc"] for r in h1]
    assert all(torch.equal(a, b) for a, b in zip(w0, w1, strict=True))


# --- CIFAR-100 above 32 px ------------------------------------------------------------------------


def test_cifar100_above_32_px_stays_32_px_in_memory_and_is_resized_when_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    made: dict[bool, np.ndarray] = {}  # the pixels the fake hands out, train and test

    class FakeCIFAR100:  # torchvision's class without its files: same attributes
        def __init__(self, root: str, train: bool, download: bool) -> None:
            n = 300 if train else 100
            self.data = made[train] = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
            self.targets = [i % 100 for i in range(n)]
            self.classes = [f"class{i}" for i in range(100)]

    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR100 = FakeCIFAR100  # type: ignore[attr-defined]
    if "torchvision" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    (tmp_path / "cifar-100-python").mkdir()
    ds = load_dataset("cifar100", root=str(tmp_path), image_size=96)
    assert isinstance(ds.images, ResizedImages) and ds.streamed and ds.image_size == 96
    native = torch.from_numpy(np.concatenate([made[True], made[False]])).permute(0, 3, 1, 2)  # (400, 3, 32, 32)
    assert torch.equal(ds.images.source, native)  # held at 32 px
    idx = torch.tensor([5, 399, 0])
    # resized when read: antialiased bilinear to 96 px, rounded back to uint8
    expected = torch.nn.functional.interpolate(native[idx].float(), size=(96, 96), mode="bilinear", antialias=True,
                                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(ds.images[idx], expected)
    task = sample_task(ds, "novel", 2, 1, seed=0)
    assert task.train_x.shape[-1] == 96
