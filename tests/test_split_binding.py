"""The ancestry's class split is binding: cards record it, commands use or check it, a split
file goes through every command, flip is a per-data-set setting, and a decoded folder is cached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from learngene.cli import main
from learngene.data import load_dataset
from learngene.data.binding import bind_split, bound_of, split_record
from learngene.data.sources import ratio_split
from learngene.errors import DataError
from learngene.models import load_checkpoint

N_CLASSES, PER_CLASS = 12, 14


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """12 classes of the embedded shapes data written as PNG files (names 'c00-<shape name>'...)."""
    root = tmp_path_factory.mktemp("binding") / "imgs"
    ds = load_dataset("shapes", images_per_class=PER_CLASS)
    for c in range(N_CLASSES):
        sub = root / f"c{c:02d}-{ds.class_names[c].replace(' ', '_')}"
        sub.mkdir(parents=True)
        for j, i in enumerate((ds.labels == c).nonzero().flatten().tolist()):
            Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(sub / f"{j}.png")
    return root


@pytest.fixture(scope="module")
def ancestry(folder: Path, tmp_path_factory) -> Path:
    """A one-epoch lg_resnet_mini trained on the folder with data seed 0 (its card records the split)."""
    out = tmp_path_factory.mktemp("anc") / "anc.safetensors"
    rc = main(["accumulate", "--arch", "lg_resnet_mini", "--dataset", f"folder:{folder}", "--epochs", "1",
               "--holdout-per-class", "4", "--batch-size", "32", "--threads", "1", "--out", str(out)])
    assert rc == 0
    return out


def _clashing_seed(folder: Path, base: set[str]) -> int:
    """A data seed whose ratio split puts at least one of `base` among the novel classes."""
    names = sorted(p.name for p in folder.iterdir())
    for seed in range(1, 50):
        split = ratio_split(len(names), (0.64, 0.16, 0.20), seed)
        if {names[c] for c in split.novel} & base:
            return seed
    raise AssertionError("no clashing seed in 1..49")


def test_the_card_records_the_split_by_name_with_data_seed_and_flip(ancestry: Path, folder: Path) -> None:
    _, card = load_checkpoint(ancestry)
    ds = load_dataset(f"folder:{folder}", seed=0)
    assert card.split["names"]["base"] == [ds.class_names[c] for c in ds.split.base]
    assert card.split["base"] == list(ds.split.base)  # the round-1 id layout is kept
    assert card.split["spec"] == f"folder:{folder}" and card.split["data_seed"] == 0
    assert card.split["flip"] is False  # folders default to no flip: a mirrored letter is another letter


def test_a_data_seed_whose_novel_classes_are_base_classes_is_refused_naming_them(
        ancestry: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, card = load_checkpoint(ancestry)
    base = set(card.split["names"]["base"])
    seed = _clashing_seed(folder, base)
    rc = main(["train", "--ancestry", str(ancestry), "--layers", "0", "--dataset", f"folder:{folder}",
               "--data-seed", str(seed), "--n-way", "2", "--k-shot", "2", "--epochs", "1", "--test-per-class", "2"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "base classes the ancestry" in err and "inflated" in err
    clash = [n for n in base if n in err]
    assert clash, err  # the overlapping classes are named
    for cmd in (["condense", "--method", "weights", "--pd-epochs", "1", "--set", "holdout_per_class=4"],
                ["probe", "--tasks", "2", "--epochs", "1"]):
        rc = main([*cmd, "--ancestry", str(ancestry), "--dataset", f"folder:{folder}", "--data-seed", str(seed)])
        assert rc != 0 and "inflated" in capsys.readouterr().err, cmd


def test_without_split_options_the_cards_split_and_data_are_used(
        ancestry: Path, folder: Path, tmp_path: Path) -> None:
    _, card = load_checkpoint(ancestry)
    run = tmp_path / "run"
    rc = main(["train", "--ancestry", str(ancestry), "--layers", "0", "--n-way", "2", "--k-shot", "2",
               "--epochs", "1", "--test-per-class", "2", "--run-dir", str(run)])
    assert rc == 0  # --dataset came from the card too: the folder, not shapes
    summary = json.loads((run / "outputs" / "summary.json").read_text())
    data = summary["data"]
    assert data["dataset"] == f"folder:{folder}" and data["split_from"] == f"ancestry {ancestry}"
    assert data["split"]["novel"] == card.split["novel"] and data["flip"] is False


def test_split_file_round_trips_accumulate_condense_inherit_train(folder: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in folder.iterdir())
    split = {"base": names[:7], "open_world": names[7:9], "novel": names[9:]}
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps(split))
    anc = tmp_path / "anc.safetensors"
    common = ["--dataset", f"folder:{folder}", "--split-file", str(split_file)]
    assert main(["accumulate", "--arch", "lg_resnet_mini", *common, "--epochs", "1", "--holdout-per-class", "4",
                 "--batch-size", "32", "--threads", "1", "--out", str(anc)]) == 0
    _, card = load_checkpoint(anc)
    assert card.split["names"] == split and card.split["split_file"] == str(split_file.resolve())
    sim = tmp_path / "sim.json"
    assert main(["condense", "--ancestry", str(anc), *common, "--method", "weights", "--pd-epochs", "1",
                 "--set", "holdout_per_class=4", "--out", str(sim)]) == 0
    ids = {n: i for i, n in enumerate(names)}
    assert json.loads(sim.read_text())["settings"]["open_world"] == [ids[n] for n in split["open_world"]]
    lg = tmp_path / "lg.safetensors"
    assert main(["inherit", "--ancestry", str(anc), "--layers", "0,1", "--out", str(lg)]) == 0
    run = tmp_path / "run"
    # the learngene file carries the split: train without any data option uses it
    assert main(["train", "--learngene", str(lg), "--n-way", "2", "--k-shot", "2", "--epochs", "1",
                 "--test-per-class", "2", "--run-dir", str(run)]) == 0
    data = json.loads((run / "outputs" / "summary.json").read_text())["data"]
    assert data["split_from"] == f"learngene {lg}"
    assert [names[c] for c in data["split"]["novel"]] == split["novel"]
    # a split file that makes a base class novel is refused for the learngene as for the ancestry
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base": names[3:10], "open_world": names[10:11], "novel": names[:3] + names[11:]}))
    assert main(["train", "--learngene", str(lg), "--split-file", str(bad), "--n-way", "2", "--k-shot", "2",
                 "--epochs", "1", "--test-per-class", "2"]) != 0


def test_a_safe_explicit_split_is_kept_and_round1_cards_bind_by_id() -> None:
    ds = load_dataset("shapes", images_per_class=4)
    rec = split_record(ds, spec="shapes", seed=0)
    ids_only = {k: rec[k] for k in ("base", "open_world", "novel")}  # a round-1 card
    bound = bound_of(ids_only, "shapes", "ancestry a")
    other = load_dataset("shapes", images_per_class=4, seed=3)
    assert "that of the ancestry a" in bind_split(other, bound, explicit=False)
    assert other.split == ds.split
    # an explicit split that swaps one base class into the novel part is refused
    swapped = type(ds.split)(ds.split.base[1:] + ds.split.novel[:1], ds.split.open_world,
                             ds.split.novel[1:] + ds.split.base[:1])
    other.split = swapped
    with pytest.raises(DataError, match=repr(ds.class_names[ds.split.base[0]])):
        bind_split(other, bound, explicit=True)
    # ids say nothing about another data set's classes: nothing is bound, and the line says so
    folder_like = load_dataset("shapes", images_per_class=4)
    folder_like.name = "folder:x"
    assert "cannot be compared" in bind_split(folder_like, bound, explicit=False)


def test_flip_is_off_in_training_when_the_data_says_so() -> None:
    from learngene.train.trainer import augment_from_uniforms

    x = torch.zeros(1, 3, 8, 8)
    x[..., 0] = 1.0  # left column lit
    u = torch.tensor([[0.1, 0.5, 0.5]])  # a draw that flips, and no shift
    assert augment_from_uniforms(x, u)[0, 0, 0, -1] == 1.0  # flipped: the right column is lit
    kept = augment_from_uniforms(x, u, flip=False)
    assert torch.equal(kept, x)


def test_a_decoded_folder_is_cached_and_a_changed_file_is_decoded_again(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path / "cache"))
    first = load_dataset(f"folder:{copy}")
    second = load_dataset(f"folder:{copy}")
    assert not first.meta["from_cache"] and second.meta["from_cache"]
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    victim = next((copy / sorted(p.name for p in copy.iterdir())[0]).iterdir())
    Image.new("RGB", (32, 32), (255, 0, 0)).save(victim)
    third = load_dataset(f"folder:{copy}")
    assert not third.meta["from_cache"] and not torch.equal(third.images, first.images)


def test_advantages_runs_a_try_out_study_on_a_folder_under_the_ancestrys_split(
        tmp_path_factory, capsys: pytest.CaptureFixture[str]) -> None:
    """`advantages --dataset folder:...` (the study used to load shapes whatever the ancestry)."""
    root = tmp_path_factory.mktemp("study") / "imgs"
    ds = load_dataset("shapes", images_per_class=12)
    for c in range(30):  # 30 classes: 19 base, 5 open-world, 6 novel (enough for 5-way tasks)
        sub = root / f"k{c:02d}"
        sub.mkdir(parents=True)
        for j, i in enumerate((ds.labels == c).nonzero().flatten().tolist()):
            Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(sub / f"{j}.png")
    anc = root.parent / "anc.safetensors"
    names = sorted(p.name for p in root.iterdir())
    split_file = root.parent / "split.json"  # the split round-trips accumulate -> advantages
    split_file.write_text(json.dumps({"base": names[8:], "open_world": names[:2], "novel": names[2:8]}))
    assert main(["accumulate", "--arch", "lg_resnet_mini", "--dataset", f"folder:{root}", "--split-file",
                 str(split_file), "--epochs", "1", "--holdout-per-class", "3", "--batch-size", "64", "--threads", "1",
                 "--out", str(anc)]) == 0
    capsys.readouterr()
    out = root.parent / "study"
    assert main(["advantages", "--quick", "--ancestry", str(anc), "--dataset", f"folder:{root}", "--split-file",
                 str(split_file), "--models", "baseline,heur", "--tasks", "2", "--shots", "1,2", "--epochs", "2",
                 "--test-per-class", "4", "--lrs", "1e-3", "--wds", "0.05", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"data: folder:{root}" in printed and "avoid the base classes" in printed
    rows = (out / "advantages.csv").read_text().splitlines()
    assert len(rows) > 1
    study = json.loads((out / "advantages-study.json").read_text())["study"]
    assert study["dataset"] == f"folder:{root}" and study["split_file"] == str(split_file)
    # without data options the study takes the card's data and split (the same one here)
    assert main(["advantages", "--quick", "--ancestry", str(anc), "--models", "baseline", "--tasks", "2", "--shots",
                 "1", "--epochs", "1", "--test-per-class", "4", "--lrs", "1e-3", "--wds", "0.05",
                 "--out", str(out / "card")]) == 0
    assert "that of the ancestry" in capsys.readouterr().out
    # a data seed that makes base classes novel is refused before any training
    _, card = load_checkpoint(anc)
    seed = next(s for s in range(1, 50)
                if {names[c] for c in ratio_split(30, (0.64, 0.16, 0.20), s).novel} & set(card.split["names"]["base"]))
    assert main(["advantages", "--quick", "--ancestry", str(anc), "--data-seed", str(seed), "--models", "baseline",
                 "--tasks", "2", "--shots", "1", "--epochs", "1", "--out", str(out / "bad")]) != 0
    assert "inflated" in capsys.readouterr().err


@pytest.mark.parametrize("argv, usage", [
    (["train", "--bogus"], "python -m learngene train: error: unrecognized arguments: --bogus"),
    (["data", "info", "--bogus"], "python -m learngene data info: error: unrecognized arguments: --bogus"),
    (["jobs", "list", "--bogus"], "python -m learngene jobs list: error: unrecognized arguments: --bogus"),
])
def test_a_subcommands_error_names_the_subcommand(argv, usage, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    err = capsys.readouterr().err
    assert usage in err and "--bogus" in err.splitlines()[-1]
    assert "usage: python -m learngene [-h] COMMAND" not in err


def test_data_info_takes_data_seed_like_every_other_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "--data-seed", "1", "--images-per-class", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 200


def test_advantages_takes_the_image_size_and_refuses_one_the_ancestry_cannot_take(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--img-size is not silently ignored by the study: the shipped 32 px ancestry refuses 64 px data."""
    assert main(["advantages", "--quick", "--img-size", "64", "--models", "baseline", "--tasks", "2", "--shots", "1",
                 "--epochs", "1", "--out", str(tmp_path / "s")]) != 0
    assert "--img-size 64 differs from the ancestry" in capsys.readouterr().err
