"""The generic trainer: config validation, determinism, callbacks, divergence, the CLI twin."""

import subprocess
import sys

import pytest
import torch

from learngene.cli import build_parser, commands
from learngene.errors import ConfigError, DivergedError
from learngene.models import create_model
from learngene.train.config import TrainConfig
from learngene.train.trainer import Trainer, augment_batch, lr_at


def _data(n=40, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % classes
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("lg_vit_tiny", num_classes=4, depth=1, embed_dim=24, num_heads=2)


def test_config_refuses_unknown_and_bad_values():
    with pytest.raises(ConfigError, match="unknown training settings"):
        TrainConfig.from_dict({"epochs": 2, "lr_typo": 1})
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1).validated()
    with pytest.raises(ConfigError, match="warmup"):
        TrainConfig(epochs=2, warmup_epochs=2).validated()
    assert TrainConfig.from_dict(TrainConfig(epochs=3).to_dict()).epochs == 3


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(epochs=10, lr=1.0, warmup_epochs=2)
    assert lr_at(cfg, 0.0) == 0.0
    assert lr_at(cfg, 0.1) == pytest.approx(0.5)
    assert lr_at(cfg, 0.2) == pytest.approx(1.0)
    assert lr_at(cfg, 0.999) < 0.01
    assert lr_at(TrainConfig(epochs=4, lr=0.3, schedule="constant"), 0.7) == 0.3


def test_augment_keeps_shape_and_is_seeded():
    x = torch.randn(8, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)


def test_training_is_deterministic_and_calls_back():
    x, y = _data()
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, device="cpu", seed=3)
    seen = []
    tr = Trainer(_model(), cfg, x, y, x[:8], y[:8])
    tr.add_callback("on_epoch_end", lambda t, rec: seen.append(rec["epoch"]))
    h1 = tr.run()
    h2 = Trainer(_model(), cfg, x, y, x[:8], y[:8]).run()
    assert seen == [1, 2]
    assert [r["train_loss"] for r in h1] == [r["train_loss"] for r in h2]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "time", "img_per_s"} <= set(h1[-1])
    assert h1[-1]["step"] == 2 * 3


def test_divergence_is_detected():
    x, y = _data()
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e8, optimizer="sgd", weight_decay=0, device="cpu",
                      augment=False, schedule="constant")
    tr = Trainer(_model(), cfg, x, y)
    with pytest.raises(DivergedError, match="diverged"):
        tr.run()
    assert tr.history[-1].get("diverged") is True


def test_cli_lists_every_command_and_each_has_help():
    names = set(commands())
    assert {"accumulate", "condense", "inherit", "train", "sweep", "jobs", "data", "models"} <= names
    parser = build_parser()
    for name in names:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([name, "--help"])
        assert exc.value.code == 0


def test_cli_reports_errors_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "learngene", "accumulate", "--epochs", "2", "--warmup-epochs", "5",
                        "--images-per-class", "30", "--holdout-per-class", "5", "--out", str(tmp_path / "a.safetensors")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert "error:" in r.stderr and "Traceback" not in r.stderr


def test_accumulate_writes_a_loadable_checkpoint_with_its_card(tmp_path):
    from learngene.data import load_dataset
    from learngene.models import load_checkpoint
    from learngene.train.accumulate import accumulate

    ds = load_dataset("shapes", images_per_class=12)
    cfg = TrainConfig(epochs=1, batch_size=64, device="cpu")
    path, card = accumulate(ds, "lg_vit_tiny", cfg, tmp_path / "anc.safetensors",
                            overrides={"depth": 1, "embed_dim": 24, "num_heads": 2}, holdout_per_class=2,
                            command="python -m learngene accumulate ...")
    model, card2 = load_checkpoint(path)
    assert card2.spec.num_classes == len(ds.split.base) == 64
    assert card2.base_accuracy == card.base_accuracy and 0 <= card.base_accuracy <= 1
    assert card2.extra["heldout_images"] == 64 * 2 and card2.command.startswith("python -m learngene")
