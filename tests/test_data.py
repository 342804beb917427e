"""Tests of learngene.data: the shapes generator, sources, splits, tasks, and the `data` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from learngene.data import (
    ClassSplit,
    ImageSet,
    holdout_split,
    load_dataset,
    normalize,
    sample_task,
    sample_tasks,
)
from learngene.data import shapes as shapes_mod
from learngene.errors import ConfigError, DataError

IPC = 30  # images per class for the shared small shapes set


@pytest.fixture(autouse=True)
def _cache_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path_factory.getbasetemp() / "lg-cache"))
    monkeypatch.setenv("LEARNGENE_DATA", str(tmp_path_factory.getbasetemp() / "lg-data"))


@pytest.fixture(scope="module")
def ds() -> ImageSet:
    return load_dataset("shapes", seed=0, images_per_class=IPC, cache=False)


def _write_png(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "pets"
    for c, name in enumerate(["ant", "bee", "cat", "dog", "eel"]):
        for i in range(4):
            _write_png(root / name / f"{i}.png", (40 * c, 10 * i, 200))
    (root / "cat" / "broken.png").write_bytes(b"this is not a png")
    (root / "dog" / "notes.txt").write_text("ignored: not an image extension")
    return root


# --- shapes -------------------------------------------------------------------------------------


def test_shapes_deterministic_per_seed() -> None:
    a = load_dataset("shapes", seed=3, images_per_class=6, cache=False)
    b = load_dataset("shapes", seed=3, images_per_class=6, cache=False)
    c = load_dataset("shapes", seed=4, images_per_class=6, cache=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    small = load_dataset("shapes", seed=3, images_per_class=2, cache=False)
    assert torch.equal(small.images, a.images[:200])  # fewer images per class = a prefix


def test_shapes_images_labels_and_counts(ds: ImageSet) -> None:
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (100 * IPC, 3, 32, 32)
    assert ds.labels.dtype == torch.int64 and ds.labels.shape == (100 * IPC,)
    assert ds.num_classes == 100 and ds.image_size == 32 and ds.skipped == 0
    assert set(ds.per_class_counts().values()) == {IPC}
    assert int(ds.images.min()) < 20 and int(ds.images.max()) > 235
    assert ds.images.float().std() > 30  # not blank
    assert len(set(ds.class_names)) == 100 and "striped triangle" in ds.class_names


def test_shapes_split_is_64_16_20_and_compositional(ds: ImageSet) -> None:
    s = ds.split
    assert (len(s.base), len(s.open_world), len(s.novel)) == (64, 16, 20)
    assert set(s.base) | set(s.open_world) | set(s.novel) == set(range(100))
    s.validate(100)
    parts = ds.meta["class_parts"]
    base_shapes = {parts[c][0] for c in s.base}
    base_patterns = {parts[c][1] for c in s.base}
    for c in s.novel + s.open_world:
        shape, pattern = parts[c]
        assert shape in base_shapes and pattern in base_patterns  # new combinations of known parts
    assert len({tuple(parts[c]) for c in range(100)}) == 100
    assert shapes_mod.default_split() == ClassSplit(
        tuple(range(64)), tuple(range(64, 80)), tuple(range(80, 100))
    )


def test_shapes_cache_roundtrip_and_corrupt_file() -> None:
    first = load_dataset("shapes", seed=5, images_per_class=3)
    assert first.meta["from_cache"] is False and first.meta["cache_path"]
    second = load_dataset("shapes", seed=5, images_per_class=3)
    assert second.meta["from_cache"] is True and torch.equal(first.images, second.images)
    Path(first.meta["cache_path"]).write_bytes(b"garbage")
    third = load_dataset("shapes", seed=5, images_per_class=3)
    assert third.meta["from_cache"] is False and torch.equal(first.images, third.images)


def test_shapes_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        load_dataset("shapes", images_per_class=0, cache=False)
    with pytest.raises(ConfigError):
        load_dataset("shapes", seed=-1, cache=False)
    with pytest.raises(ConfigError, match="unknown data set"):
        load_dataset("imagenet")


# --- base types ---------------------------------------------------------------------------------


def test_class_split_validation_and_roundtrip() -> None:
    s = ClassSplit((0, 1), (2,), (3, 4))
    assert s.classes("open") == (2,) and s.classes("novel") == (3, 4)
    assert ClassSplit.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(DataError, match="both"):
        ClassSplit((0, 1), (1,), (2,)).validate(3)
    with pytest.raises(DataError, match="out of range"):
        ClassSplit((0,), (1,), (5,)).validate(3)
    with pytest.raises(DataError, match="empty"):
        ClassSplit((0,), (), (2,)).validate(3)
    with pytest.raises(ConfigError):
        s.classes("test")  # type: ignore[arg-type]


def test_normalize_and_indices(ds: ImageSet) -> None:
    x = normalize(ds.images[:8])
    assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32)
    assert x.min() >= -2.0 and x.max() <= 2.0
    with pytest.raises(DataError):
        normalize(x)
    idx = ds.indices_of([0, 99])
    assert idx.dtype == torch.int64 and len(idx) == 2 * IPC
    assert set(ds.labels[idx].tolist()) == {0, 99}


# --- tasks --------------------------------------------------------------------------------------


def test_sample_task_shapes_labels_and_disjoint(ds: ImageSet) -> None:
    t = sample_task(ds, "novel", n_way=5, k_shot=4, seed=1)
    assert t.train_x.shape == (20, 3, 32, 32) and t.train_x.dtype == torch.uint8
    assert t.train_y.tolist() == [i for i in range(5) for _ in range(4)]
    assert t.test_y.min() == 0 and t.test_y.max() == 4 and len(t.test_x) == len(t.test_y)
    assert set(t.classes) <= set(ds.split.novel) and len(set(t.classes)) == 5
    assert not set(t.train_index.tolist()) & set(t.test_index.tolist())
    assert torch.equal(ds.labels[t.train_index], torch.tensor(t.classes)[t.train_y])
    assert torch.equal(ds.labels[t.test_index], torch.tensor(t.classes)[t.test_y])
    assert torch.equal(t.train_x, ds.images[t.train_index])
    small = sample_task(ds, "base", n_way=3, k_shot=2, seed=1, test_per_class=5)
    assert len(small.test_y) == 15 and set(small.classes) <= set(ds.split.base)


def test_sample_task_seeding(ds: ImageSet) -> None:
    a = sample_task(ds, k_shot=3, seed=7)
    b = sample_task(ds, k_shot=3, seed=7)
    assert a.classes == b.classes and torch.equal(a.train_index, b.train_index)
    others = [sample_task(ds, k_shot=3, seed=8), sample_task(ds, k_shot=3, seed=7, index=1)]
    assert all(not torch.equal(a.train_index, o.train_index) for o in others)
    tasks = sample_tasks(ds, 3, k_shot=3, seed=7)
    assert [t.index for t in tasks] == [0, 1, 2]
    assert torch.equal(tasks[1].test_index, others[1].test_index)


def test_k_shot_prefix_and_fixed_test_set(ds: ImageSet) -> None:
    small, big = sample_task(ds, k_shot=5, seed=2, index=4), sample_task(ds, k_shot=10, seed=2, index=4)
    assert small.classes == big.classes
    per5, per10 = small.train_index.view(5, 5), big.train_index.view(5, 10)
    assert torch.equal(per5, per10[:, :5])
    assert torch.equal(small.test_index, big.test_index)  # IPC=30 -> reserve 15 >= 10


def test_sampler_errors(ds: ImageSet) -> None:
    with pytest.raises(DataError, match="n_way"):
        sample_task(ds, "open", n_way=17)
    with pytest.raises(DataError, match=r"only 30 image\(s\)"):
        sample_task(ds, k_shot=30)
    with pytest.raises(ConfigError):
        sample_task(ds, k_shot=0)
    with pytest.raises(ConfigError):
        sample_tasks(ds, 0)


def test_holdout_split(ds: ImageSet) -> None:
    train, held = holdout_split(ds, ds.split.base, holdout_per_class=5, seed=0)
    assert len(held) == 64 * 5 and len(train) == 64 * (IPC - 5)
    assert not set(train.tolist()) & set(held.tolist())
    assert set(ds.labels[held].tolist()) == set(ds.split.base)
    again = holdout_split(ds, ds.split.base, 5, seed=0)
    assert torch.equal(again[1], held)
    assert not torch.equal(holdout_split(ds, ds.split.base, 5, seed=1)[1], held)
    with pytest.raises(DataError, match="too few"):
        holdout_split(ds, [0], holdout_per_class=IPC, seed=0)


# --- folder and cifar sources -------------------------------------------------------------------


def test_folder_source_skips_corrupt_files(image_folder: Path) -> None:
    ds = load_dataset(f"folder:{image_folder}", seed=0, split_ratio=(0.6, 0.2, 0.2))
    assert ds.class_names == ["ant", "bee", "cat", "dog", "eel"]
    assert ds.skipped == 1 and ds.meta["skipped_files"] == ["cat/broken.png (not an image Pillow can read)"]
    assert ds.images.shape == (20, 3, 32, 32) and set(ds.per_class_counts().values()) == {4}
    assert (len(ds.split.base), len(ds.split.open_world), len(ds.split.novel)) == (3, 1, 1)
    assert ds.images[0, 2].float().mean() == pytest.approx(200, abs=1)  # colour survived the resize
    other = load_dataset(f"folder:{image_folder}", seed=1, images_per_class=2, image_size=16)
    assert other.images.shape == (10, 3, 16, 16)


def test_folder_split_file(image_folder: Path, tmp_path: Path) -> None:
    good = tmp_path / "split.json"
    good.write_text(json.dumps({"base": ["ant", "bee"], "open_world": ["cat"], "novel": ["dog", "eel"]}))
    ds = load_dataset(f"folder:{image_folder}", split_file=str(good))
    assert ds.split == ClassSplit((0, 1), (2,), (3, 4))
    bad = tmp_path / "overlap.json"
    bad.write_text(json.dumps({"base": ["ant", "bee"], "open_world": ["bee"], "novel": ["dog"]}))
    with pytest.raises(DataError, match="both"):
        load_dataset(f"folder:{image_folder}", split_file=str(bad))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"base": ["yak"], "open_world": ["bee"], "novel": ["dog"]}))
    with pytest.raises(DataError, match="unknown class"):
        load_dataset(f"folder:{image_folder}", split_file=str(unknown))


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no classes"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    few = tmp_path / "few"
    for name in ("a", "b", "c"):
        _write_png(few / name / "0.png", (1, 2, 3))
    ds = load_dataset(f"folder:{few}")
    with pytest.raises(DataError, match=r"only 1 image\(s\)"):
        sample_task(ds, "base", n_way=1, k_shot=1)
    with pytest.raises(ConfigError, match="split_ratio"):
        load_dataset(f"folder:{few}", split_ratio=(0.5, 0.5, 0.5))


def test_cifar100_offline_message(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("cifar100", root=str(tmp_path))
    msg = str(info.value)
    assert "cifar-100-python" in msg and "--data-root" in msg and str(tmp_path) in msg


def test_cifar100_merge_split_and_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    import numpy as np

    class FakeCIFAR100:  # stands in for torchvision's class: same attributes, no files needed
        def __init__(self, root: str, train: bool, download: bool) -> None:
            n = 500 if train else 100
            self.data = np.full((n, 32, 32, 3), 7 if train else 9, dtype=np.uint8)
            self.targets = [i % 100 for i in range(n)]
            self.classes = [f"class{i}" for i in range(100)]

    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR100 = FakeCIFAR100  # type: ignore[attr-defined]
    if "torchvision" not in sys.modules:
        monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    (tmp_path / "cifar-100-python").mkdir()
    ds = load_dataset("cifar100", root=str(tmp_path), images_per_class=5, image_size=16)
    assert ds.images.shape == (500, 3, 16, 16) and set(ds.per_class_counts().values()) == {5}
    assert ds.split == ClassSplit(tuple(range(64)), tuple(range(64, 80)), tuple(range(80, 100)))
    full = load_dataset("cifar100", root=str(tmp_path))
    assert len(full) == 600 and int(full.images[-1].max()) == 9  # train + test merged


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_info_and_preview(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from learngene.cli import main

    assert main(["data", "info", "--dataset", f"folder:{image_folder}"]) == 0
    out = capsys.readouterr().out
    assert "skipped      1" in out and "cat/broken.png" in out and "dog" in out
    assert main(["data", "info", "--dataset", "shapes", "--images-per-class", "2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["split_sizes"] == {"base": 64, "open": 16, "novel": 20} and info["num_images"] == 200
    png = tmp_path / "grid.png"
    args = ["data", "preview", "--dataset", "shapes", "--images-per-class", "2", "--out", str(png)]
    assert main(args + ["--part", "novel", "--per-class", "2"]) == 0
    assert Image.open(png).size[1] == 20 * 34 * 2 + 2 * 2
    assert main(["data", "info", "--dataset", f"folder:{tmp_path / 'missing'}"]) != 0
    assert "does not exist" in capsys.readouterr().err
