"""Accumulating: train an ancestry model on the base classes of a data set.

The result is a `.safetensors` checkpoint plus a model card that records the architecture, the
data and its split, the training settings, the held-out base-class accuracy and the exact command.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from learngene.data import ImageSet, holdout_split
from learngene.data.binding import split_record
from learngene.models import ModelCard, create_model, save_checkpoint
from learngene.reporting import Reporter
from learngene.train.trainer import TrainConfig, Trainer


def remap_labels(labels: torch.Tensor, classes: tuple[int, ...]) -> torch.Tensor:
    """Map global class ids to 0..len(classes)-1 in the order of `classes`."""
    lut = torch.full((int(labels.max()) + 1,), -1, dtype=torch.long)
    lut[torch.tensor(classes)] = torch.arange(len(classes))
    out = lut[labels]
    assert (out >= 0).all(), "labels outside the given classes"
    return out


def base_data(ds: ImageSet, cfg: TrainConfig, holdout_per_class: int) -> tuple[Any, torch.Tensor, Any, torch.Tensor]:
    """(train images, train labels, held-out images, held-out labels) of the base classes, labels 0..n-1.

    For a streamed data set the images are lazy views (nothing read yet): the Trainer reads them batch by
    batch through a DataLoader."""
    base = tuple(ds.split.base)
    train_idx, test_idx = holdout_split(ds, base, holdout_per_class, seed=cfg.seed, option="--holdout-per-class")
    return (ds.subset_images(train_idx), remap_labels(ds.labels[train_idx], base),
            ds.subset_images(test_idx), remap_labels(ds.labels[test_idx], base))


def new_ancestry(ds: ImageSet, arch: str, cfg: TrainConfig, overrides: dict[str, Any] | None = None, *,
                 pretrained: bool = False) -> torch.nn.Module:
    """The untrained ancestry for `ds`'s image size, initialised under `torch.manual_seed(cfg.seed)`; with
    `pretrained`, timm's published weights (downloaded; a clear `CheckpointError` offline) and a new head."""
    torch.manual_seed(cfg.seed)
    return create_model(arch, num_classes=len(ds.split.base), img_size=ds.image_size, pretrained=pretrained,
                        **(overrides or {}))


def save_ancestry(
    model: torch.nn.Module, ds: ImageSet, cfg: TrainConfig, history: list[dict[str, Any]], out: str | Path, *,
    command: str, holdout_per_class: int, train_images: int, heldout_images: int, seconds: float, device: str,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, ModelCard]:
    """Write the trained ancestry and its model card (data, split, settings, held-out accuracy, command)."""
    final = history[-1]
    split = split_record(ds, spec=str(ds.meta.get("spec", ds.name)), seed=int(ds.meta.get("data_seed", 0)),
                         split_file=ds.meta.get("split_file"), flip=cfg.flip if cfg.augment else None)
    card = ModelCard(
        spec=model.lg_spec, dataset=ds.name, split=split, epochs=cfg.epochs, seed=cfg.seed,
        base_accuracy=final.get("test_acc"), command=command,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), sha256="",
        extra={
            "train_config": cfg.to_dict(), "holdout_per_class": holdout_per_class,
            "train_images": train_images, "heldout_images": heldout_images,
            "final_train_acc": final.get("train_acc"), "final_test_loss": final.get("test_loss"),
            "train_seconds": round(seconds, 1), "device": device,
            "data_meta": {k: v for k, v in ds.meta.items() if isinstance(v, (int, float, str, bool))},
            **(extra or {}),
        },
    )
    path = save_checkpoint(model.cpu(), out, card)
    return path, card


def accumulate(
    ds: ImageSet, arch: str, cfg: TrainConfig, out: str | Path, *, overrides: dict[str, Any] | None = None,
    holdout_per_class: int = 100, command: str = "", reporter: Reporter | None = None, pretrained: bool = False,
) -> tuple[Path, ModelCard]:
    """Train `arch` on the base classes of `ds` and save it with its model card.

    A streamed data set (`ds.streamed`, e.g. a large folder) is read batch by batch through a DataLoader.

    Args:
        ds: the data set; its `split.base` classes are used.
        arch: a preset or timm architecture name.
        cfg: training settings.
        out: path of the `.safetensors` file to write (the card goes next to it as `.json`).
        overrides: architecture overrides (e.g. depth, embed_dim).
        holdout_per_class: base-class images per class kept out of training to measure accuracy.
        command: the command line, recorded in the card.
        reporter: progress/metrics sink.
        pretrained: start from timm's published weights (timm architectures only; needs the network or
            timm's cache), recorded in the card.
    """
    x_train, y_train, x_test, y_test = base_data(ds, cfg, holdout_per_class)
    model = new_ancestry(ds, arch, cfg, overrides, pretrained=pretrained)
    trainer = Trainer(model, cfg, x_train, y_train, x_test, y_test)
    if reporter is not None:
        trainer.add_callback("on_epoch_end", lambda tr, rec: report_epoch(reporter, rec))
    t0 = time.time()
    history = trainer.run()
    seconds = time.time() - t0
    extra = {"train_cost": train_cost_record(model, ds, history, len(x_train), len(x_test), seconds)}
    if pretrained:
        extra["pretrained"] = True
    return save_ancestry(model, ds, cfg, history, out, command=command, holdout_per_class=holdout_per_class,
                         train_images=len(x_train), heldout_images=len(x_test), seconds=seconds,
                         device=str(trainer.device), extra=extra)


def train_cost_record(model: torch.nn.Module, ds: ImageSet, history: list[dict[str, Any]], n_train: int,
                      n_test: int, seconds: float) -> dict[str, Any]:
    """What the ancestry's training cost (epochs, images seen, FLOPs, seconds), for its card: the
    learngene's account carries it (`learngene.descend.ledger`)."""
    from learngene.train.flops import flops_per_image, training_cost

    evals = sum(1 for r in history if r.get("test_acc") is not None)
    return training_cost(len(history), n_train, n_test, evals, flops_per_image(model, ds.image_size), round(seconds, 1))


def report_epoch(reporter: Reporter, rec: dict[str, Any]) -> None:
    """An ancestry epoch record into the run's metrics, and a progress tick."""
    reporter.metric({"kind": "epoch", "model": "ancestry", **rec})
    reporter.advance(1, test_acc=rec.get("test_acc", float("nan")))
