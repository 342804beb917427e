"""The real-size path: timm's `deit_tiny_patch16_224` and `resnet18` as ancestries at
224 px, through accumulate -> condense -> inherit -> train on a small image folder, with tiny settings
on the CPU (random weights: no download here). The folder's files are 256 px, decoded straight to
224 px; the ancestry's card records its input size and every later command loads the data at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from learngene.cli import main
from learngene.data import load_dataset
from learngene.data.shapes import class_names, render_batch
from learngene.models import load_checkpoint

N_CLASSES, PER_CLASS, NATIVE = 10, 4, 256


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNGENE_CACHE", str(tmp_path_factory.getbasetemp() / "cache-224"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 classes x 4 shapes images rendered at 256 px, as PNG files (one sub-folder per class)."""
    root = tmp_path_factory.mktemp("f224") / "imgs"
    names = class_names()
    labels = torch.arange(N_CLASSES).repeat_interleave(PER_CLASS)
    images = render_batch(labels, NATIVE, torch.Generator().manual_seed(0))
    for k, c in enumerate(labels.tolist()):
        sub = root / names[c].replace(" ", "_")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[k].permute(1, 2, 0).numpy()).save(sub / f"{k % PER_CLASS}.png")
    return root


def test_a_folder_is_decoded_from_its_native_size_to_img_size(folder: Path) -> None:
    ds = load_dataset(f"folder:{folder}", image_size=224)
    assert ds.images.shape == (N_CLASSES * PER_CLASS, 3, 224, 224)
    # one resize from 256 px, not through 32 px: far more detail than a 32 px image blown up again
    small = load_dataset(f"folder:{folder}", image_size=32)
    up = torch.nn.functional.interpolate(small.images[:4].float(), size=224, mode="bilinear")
    detail = (ds.images[:4].float() - up).abs().mean()
    assert detail > 5, detail


@pytest.mark.parametrize("arch", ["deit_tiny_patch16_224", "resnet18"])
def test_a_timm_ancestry_at_224_px_goes_through_condense_inherit_train(arch: str, folder: Path, tmp_path: Path
                                                                       ) -> None:
    anc, sim, lg, run = (tmp_path / n for n in ("anc.safetensors", "sim.json", "lg.safetensors", "run"))
    assert main(["accumulate", "--arch", arch, "--dataset", f"folder:{folder}", "--img-size", "224",
                 "--epochs", "1", "--batch-size", "8", "--holdout-per-class", "1", "--threads", "1",
                 "--out", str(anc)]) == 0
    model, card = load_checkpoint(anc)
    assert card.spec.arch == arch and card.spec.img_size == 224 and card.split["image_size"] == 224
    if arch.startswith("deit"):
        assert tuple(model.pos_embed.shape) == (1, 1 + (224 // 16) ** 2, 192)  # 14 x 14 patches + CLS
    assert main(["condense", "--ancestry", str(anc), "--method", "cka", "--images", "8", "--pd-epochs", "1",
                 "--set", "holdout_per_class=1", "--out", str(sim)]) == 0
    settings = json.loads(sim.read_text())["settings"]
    assert settings["pd_spec"]["img_size"] == 224 and settings["images_used"] == 8  # the pseudo-descendant too
    assert main(["inherit", "--ancestry", str(anc), "--similarity", str(sim), "--out", str(lg)]) == 0
    saved = tmp_path / "models"
    assert main(["train", "--learngene", str(lg), "--n-way", "2", "--k-shot", "2", "--epochs", "1",
                 "--test-per-class", "1", "--batch-size", "4", "--threads", "1", "--run-dir", str(run),
                 "--save-models", str(saved)]) == 0
    summary = json.loads((run / "outputs" / "summary.json").read_text())
    assert summary["pairs"] and all(0 <= p["learngene"]["final_acc"] <= 1 for p in summary["pairs"])
    for role in ("learngene", "baseline"):
        desc, desc_card = load_checkpoint(saved / f"task0-{role}.safetensors")
        assert desc_card.spec.img_size == 224
        with torch.no_grad():
            assert desc.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 2)


def test_another_img_size_than_the_ancestrys_is_refused(folder: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    anc = tmp_path / "anc.safetensors"
    assert main(["accumulate", "--arch", "resnet18", "--dataset", f"folder:{folder}", "--img-size", "64",
                 "--epochs", "1", "--batch-size", "16", "--holdout-per-class", "1", "--threads", "1",
                 "--out", str(anc)]) == 0
    capsys.readouterr()
    assert main(["train", "--ancestry", str(anc), "--layers", "0", "--img-size", "32", "--n-way", "2",
                 "--k-shot", "1", "--epochs", "1", "--test-per-class", "1"]) != 0
    err = capsys.readouterr().err
    assert "--img-size 32 differs" in err and "64 px" in err, err


def test_pretrained_weights_offline_give_a_clear_error(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Offline by huggingface_hub's own switch (HF_HUB_OFFLINE=1), whether or not the Hub is reachable here."""
    from huggingface_hub import constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # no cached weights to fall back on
    rc = main(["accumulate", "--arch", "resnet18", "--pretrained", "--dataset", f"folder:{folder}",
               "--img-size", "224", "--epochs", "1", "--holdout-per-class", "1", "--out",
               str(tmp_path / "p.safetensors")])
    err = capsys.readouterr().err
    assert rc != 0 and "could not download pretrained weights for resnet18: no network" in err, err
    assert not (tmp_path / "p.safetensors").exists()
