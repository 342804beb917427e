"""Hostile inputs, second pass: cards naming huge sizes, NaN weights, a card without its hash, every image
mode Pillow reads, split files that are devices or use other spellings, folders with empty classes, and
messages that name the options as typed. Each test failed before its fix."""

from __future__ import annotations

import io
import json
import shutil
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from learngene.cli import main
from learngene.errors import CheckpointError, DataError
from learngene.models import ModelCard, create_model, file_sha256, load_checkpoint, save_checkpoint


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def ancestry(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("lg_vit_tiny", 8, depth=2)
    return save_checkpoint(model, tmp_path_factory.mktemp("anc") / "anc.safetensors", ModelCard(spec=model.lg_spec))


def _copy(ancestry: Path, folder: Path, name: str, card_change=None, weights_change=None) -> Path:
    path = folder / f"{name}.safetensors"
    if weights_change is None:
        shutil.copy(ancestry, path)
    else:
        state = load_file(ancestry)
        weights_change(state)
        save_file(state, str(path))
    card = json.loads(ancestry.with_suffix(".json").read_text())
    card["sha256"] = file_sha256(path)
    if card_change is not None:
        card_change(card)
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("field, value", [("num_classes", 20_000_000), ("img_size", 100_000), ("depth", 5000),
                                          ("embed_dim", 50_000), ("num_heads", 10**6)])
def test_a_card_naming_a_huge_size_is_refused_before_anything_is_built(ancestry, tmp_path, field, value):
    def change(card):
        (card["spec"] if field in ("num_classes", "img_size") else card["spec"]["overrides"])[field] = value
    path = _copy(ancestry, tmp_path, field, change)
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"{field} must be a whole number from 1 to \d+"):
        load_checkpoint(path)
    assert time.perf_counter() - t0 < 5


def test_a_card_within_bounds_but_unlike_its_weights_is_refused_on_their_header(ancestry, tmp_path):
    path = _copy(ancestry, tmp_path, "wide", lambda c: c["spec"].__setitem__("num_classes", 90_000))
    from learngene.models import check_card_fits

    with pytest.raises(CheckpointError, match=r"head.weight: checkpoint \(8, 96\) vs model \(90000, 96\)"):
        check_card_fits(load_checkpoint.__globals__["read_card"](path).spec, path)
    with pytest.raises(CheckpointError, match="does not fit lg_vit_tiny"):
        load_checkpoint(path)


def test_option_sizes_are_bounded_and_named_as_typed():
    code, _, err = cli("models", "layers", "lg_vit_tiny", "--num-classes", "20000000")
    assert code == 2 and "--num-classes must be a whole number from 1 to 100000" in one_error(err)
    code, _, err = cli("models", "layers", "lg_vit_tiny", "--img-size", "100000")
    assert code == 2 and "--img-size must be a whole number from 1 to 1024" in one_error(err)
    code, _, err = cli("models", "layers", "lg_vit_tiny", "--set", "embed_dim=4096", "--set", "depth=64")
    assert code == 2 and "more than the 400M limit" in one_error(err)


def test_depth_zero_and_huge_depths_are_refused(ancestry, tmp_path):
    code, _, err = cli("accumulate", "--set", "depth=0", "--images-per-class", "4", "--holdout-per-class", "2",
                       "--epochs", "1", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "a.safetensors"))
    assert code == 2 and "depth must be a whole number from 1 to 64" in one_error(err)
    assert not (tmp_path / "a.safetensors").exists()
    for command in (["train", "--epochs", "1", "--device", "cpu"], ["inherit", "--out", str(tmp_path / "l.safetensors")]):
        code, _, err = cli(*command, "--ancestry", str(ancestry), "--layers", "0", "--depth", "100000")
        assert code == 2 and "--depth must be from 1 to 64" in one_error(err)


def test_non_finite_weights_are_refused_on_load_naming_the_tensors(ancestry, tmp_path):
    def poison(state):
        state["blocks.0.attn.qkv.weight"][0, 0] = float("nan")
        state["blocks.1.mlp.fc1.bias"][3] = float("inf")
    path = _copy(ancestry, tmp_path, "nan", weights_change=poison)
    for command in (["models", "layers", str(path)], ["inherit", "--ancestry", str(path), "--layers", "0",
                                                      "--out", str(tmp_path / "lg.safetensors")]):
        code, _, err = cli(*command)
        line = one_error(err)
        assert code == 1 and "blocks.0.attn.qkv.weight" in line and "blocks.1.mlp.fc1.bias" in line, line
    assert not (tmp_path / "lg.safetensors").exists()


def test_a_learngene_file_with_non_finite_weights_is_refused(ancestry, tmp_path):
    from learngene.inherit import load_learngene, save_learngene

    model, _ = load_checkpoint(ancestry)
    path = save_learngene(model, [0], tmp_path / "lg.safetensors")
    state = load_file(path)
    key = next(k for k in state if k.startswith("layers/0/") and state[k].is_floating_point())
    state[key].view(-1)[0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(state, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=f"NaN or infinite values in 1 tensor.*{key}"):
        load_learngene(path)
    with torch.no_grad():
        model.blocks[0].norm1.weight[0] = float("inf")
    with pytest.raises(CheckpointError, match="not saved"):
        save_learngene(model, [0], tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="not saved.*blocks.0.norm1.weight"):
        save_checkpoint(model, tmp_path / "bad.safetensors", ModelCard(spec=model.lg_spec))
    assert not list(tmp_path.glob("bad*"))


@pytest.mark.parametrize("sha", ["", "abc", None])
def test_a_card_without_a_valid_sha256_is_refused_never_skipped(ancestry, tmp_path, sha):
    def change(card):
        if sha is None:
            del card["sha256"]
        else:
            card["sha256"] = sha
    path = _copy(ancestry, tmp_path, "nosha", change, weights_change=lambda s: s["head.bias"].add_(1.0))
    with pytest.raises(CheckpointError, match="SHA-256|sha256"):
        load_checkpoint(path)


# ------------------------------------------------------------------ images


def _decoded(path: Path) -> torch.Tensor | str:
    from learngene.data.stream import decode_or_reason

    return decode_or_reason(path, 8)


def test_sixteen_bit_and_wide_images_are_scaled_not_clipped(tmp_path):
    grey = np.full((16, 16), 32768, dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    img = _decoded(tmp_path / "g16.png")
    assert isinstance(img, torch.Tensor) and abs(float(img.float().mean()) - 127.5) < 1.5
    Image.fromarray(np.full((16, 16), 0.25, dtype=np.float32)).save(tmp_path / "f.tif")
    assert abs(float(_decoded(tmp_path / "f.tif").float().mean()) - 63.75) < 1.5
    Image.fromarray(np.full((16, 16), 70000, dtype=np.int32)).save(tmp_path / "i.tif")
    assert "32-bit integer" in _decoded(tmp_path / "i.tif")
    Image.fromarray(np.full((16, 16), np.nan, dtype=np.float32)).save(tmp_path / "nan.tif")
    assert "NaN" in _decoded(tmp_path / "nan.tif")


def test_transparency_palette_and_other_modes_decode_to_rgb(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")  # transparent red: white
    assert _decoded(tmp_path / "clear.png").float().mean().item() == 255
    Image.new("LA", (8, 8), (0, 255)).save(tmp_path / "la.png")
    assert _decoded(tmp_path / "la.png").float().mean().item() == 0
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "pal.png", transparency=1)
    assert _decoded(tmp_path / "pal.png").float().mean().item() == 255
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert _decoded(tmp_path / "cmyk.jpg")[1].float().mean().item() < 30  # magenta: little green
    Image.new("1", (8, 8), 1).save(tmp_path / "bw.png")
    assert _decoded(tmp_path / "bw.png").float().mean().item() == 255


def _folder(root: Path, classes: int = 4, n: int = 4) -> Path:
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (40 * c, 20 * i, 0)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_a_folder_reports_empty_and_subfolder_only_classes_and_escapes_names(tmp_path):
    root = _folder(tmp_path / "data")
    (root / "empty").mkdir()
    (root / "nested" / "inner").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "nested" / "inner" / "x.png")
    _folder(root / "..", 0)
    hostile = root / "bad\nname\x1b[31m"
    hostile.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(hostile / f"{i}.png")
    code, out, err = cli("data", "info", "--dataset", f"folder:{root}")
    assert code == 0, err
    assert "left out: empty/ (empty)" in out and "left out: nested/ (only sub-folders" in out
    assert "bad\\nname\\x1b[31m" in out and "\x1b" not in out


def test_a_truncated_jpeg_in_a_streamed_folder_is_skipped_when_indexed(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path / "cache"))
    root = _folder(tmp_path / "data")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "c0" / "whole.jpg")
    data = (root / "c0" / "whole.jpg").read_bytes()
    (root / "c0" / "cut.jpg").write_bytes(data[: len(data) - 200])  # the header is whole, the end is not
    from learngene.data.sources import load_folder

    ds = load_folder(root, stream=True)
    assert ds.skipped == 1 and ds.meta["skipped_files"][0].startswith("c0/cut.jpg (a truncated JPEG")


# ------------------------------------------------------------------ split files


def _split(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "split.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_split_file_reading_is_bounded(tmp_path):
    from learngene.data.sources import read_split_file

    t0 = time.perf_counter()
    with pytest.raises(DataError, match="not a regular file"):
        read_split_file("/dev/zero", ["a", "b", "c"])
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(17 * 2**20)
    with pytest.raises(DataError, match="larger than 16 MiB"):
        read_split_file(big, ["a", "b", "c"])
    assert time.perf_counter() - t0 < 5


def test_split_file_keys_spellings_notes_and_class_names(tmp_path):
    from learngene.data.sources import read_split_file

    names = ["cat", "dog", "fox", "owl"]
    for key in ("open-world", "open_world", "openworld"):
        split = read_split_file(_split(tmp_path, {"base": ["cat", "dog"], key: ["fox"], "novel": ["owl"],
                                                  "comment": "whatever"}), names)
        assert split.open_world == (2,)
    with pytest.raises(DataError, match="unknown key 'whatever'.*open_world"):
        read_split_file(_split(tmp_path, {"base": ["cat"], "open": ["fox"], "novel": ["owl"], "whatever": []}), names)
    with pytest.raises(DataError, match="lacks the key\\(s\\) 'open_world'"):
        read_split_file(_split(tmp_path, {"base": ["cat"], "novel": ["owl"]}), names)
    with pytest.raises(DataError, match="class 'cat' is in both 'base' and 'novel'"):
        read_split_file(_split(tmp_path, {"base": ["cat"], "open_world": ["fox"], "novel": ["cat"]}), names)
    with pytest.raises(DataError, match="class 'cat' is listed twice in 'base'"):
        read_split_file(_split(tmp_path, {"base": ["cat", "cat"], "open_world": ["fox"], "novel": ["owl"]}), names)


# ------------------------------------------------------------------ messages


def test_task_and_holdout_messages_give_possible_advice(tmp_path):
    root = _folder(tmp_path / "three", classes=3, n=12)
    code, _, err = cli("train", "--dataset", f"folder:{root}", "--epochs", "1", "--device", "cpu", "--threads", "1")
    line = one_error(err)
    assert "at least 2" in line and "at most 1" not in line, line
    code, _, err = cli("train", "--n-way", "30", "--images-per-class", "30", "--epochs", "1", "--device", "cpu")
    assert "--n-way 30 is more than the 20 classes" in one_error(err) and "n_way" not in one_error(err)
    code, _, err = cli("train", "--k-shot", "1000", "--images-per-class", "30", "--epochs", "1", "--device", "cpu")
    assert "lower --k-shot to at most 29" in one_error(err)
    code, _, err = cli("data", "info", "--img-size", "7")
    assert code == 2 and "--img-size must be from 8 to 256 for the shapes data set" in one_error(err)
    code, _, err = cli("accumulate", "--holdout-per-class", "0", "--epochs", "1", "--device", "cpu")
    assert code == 2 and "--holdout-per-class must be from 1" in one_error(err)

    from learngene.data import holdout_split
    from learngene.data.sources import load_folder

    one = _folder(tmp_path / "one", classes=3, n=1)
    ds = load_folder(one, cache=False)
    with pytest.raises(DataError) as exc:
        holdout_split(ds, [0], 2, seed=0, option="--holdout-per-class")
    assert "below 1" not in str(exc.value) and "at least 2 images" in str(exc.value)
