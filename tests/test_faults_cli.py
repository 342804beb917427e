"""Bad inputs that used to crash with a traceback or end in a false success.

Each test fails on the code before its fix: a divergence on the last step reported as success,
unbounded counts (a billion tasks or images), a decompression bomb in a folder data set, a label
smoothing outside [0, 1), and unusable paths that gave raw OSError tracebacks.
"""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from learngene.cli import main
from learngene.descend.batched import train_batched
from learngene.errors import ConfigError, DivergedError
from learngene.models import ModelCard, create_model, save_checkpoint
from learngene.runlog import EXIT_DIVERGED, EXIT_USAGE, read_jsonl
from learngene.train.config import TrainConfig
from learngene.train.trainer import Trainer, state_is_finite

TINY = ["--images-per-class", "30", "--k-shot", "2", "--test-per-class", "5", "--threads", "1", "--epochs", "1",
        "--device", "cpu"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ancestry_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    vit = create_model("lg_vit_tiny", 8, depth=2)
    return save_checkpoint(vit, tmp_path_factory.mktemp("anc") / "anc.safetensors", ModelCard(spec=vit.lg_spec))


def train_argv(ancestry: Path, *extra: str) -> list[str]:
    return ["train", "--ancestry", str(ancestry), "--layers", "0", *TINY, *extra]


def one_line_error(capsys) -> str:
    """The CLI's error output, which must be one `error: ...` line (no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


# ------------------------------------------------------------------ 1. divergence on the last step


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def _images(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(n) % 3


def test_weights_made_infinite_by_the_only_step_mark_the_run_diverged():
    x, y = _images()  # one step per epoch: no later loss ever sees the broken weights
    cfg = TrainConfig(epochs=1, batch_size=12, lr=1e-3, weight_decay=1e300, device="cpu")
    tr = Trainer(tiny_cnn(), cfg, x, y)  # no test set either
    with pytest.raises(DivergedError, match="diverged"):
        tr.run()
    assert tr.history[-1]["diverged"] is True and math.isnan(tr.history[-1]["train_loss"])


def test_overflowing_test_loss_marks_the_run_diverged():
    torch.manual_seed(0)
    model = create_model("lg_vit_tiny", 3, depth=1, embed_dim=24, num_heads=2)
    x, y = _images()
    tr = Trainer(model, TrainConfig(epochs=1, batch_size=12, lr=1e30, device="cpu"), x, y, x, y)
    with pytest.raises(DivergedError):
        tr.run()
    assert state_is_finite(model)  # huge but finite weights: only the test loss shows it
    assert tr.history[-1]["diverged"] is True and "test_acc" not in tr.history[-1]


def test_batched_twin_agrees_on_last_step_divergence():
    x, y = _images()
    torch.manual_seed(0)
    models = [tiny_cnn() for _ in range(3)]
    cfgs = [TrainConfig(epochs=2, batch_size=12, device="cpu", **kw)
            for kw in (dict(lr=1e-3), dict(lr=1e-3, weight_decay=1e300), dict(lr=1e30))]
    ref = []
    for model, cfg in zip(copy.deepcopy(models), cfgs, strict=True):
        tr = Trainer(model, cfg, x, y, x, y)
        with contextlib.suppress(DivergedError):
            tr.run()
        ref.append(tr.history)
    got = train_batched(models, cfgs, [(x, y, x, y)] * 3)
    assert [len(h) for h in got] == [2, 1, 1] and [bool(h[-1].get("diverged")) for h in got] == [False, True, True]
    for want, have in zip(ref, got, strict=True):
        assert [(r["epoch"], r["step"], r.get("diverged"), list(r)) for r in want] == \
               [(r["epoch"], r["step"], r.get("diverged"), list(r)) for r in have]
        assert [r["lr"] for r in want] == pytest.approx([r["lr"] for r in have], rel=1e-12)


@pytest.mark.parametrize("extra", [["--lr", "1e30"], ["--weight-decay", "1e300"]])
def test_cli_train_diverging_on_the_last_step_exits_3(tmp_path, ancestry_file, capsys, extra):
    run = tmp_path / "run"
    rc = main(train_argv(ancestry_file, *extra, "--run-dir", str(run)))
    assert rc == EXIT_DIVERGED and "diverged" in capsys.readouterr().err
    records, _ = read_jsonl(run / "metrics.jsonl")
    pairs = [r for r in records if r["kind"] == "pair"]
    assert pairs and all(p["learngene"]["diverged"] and p["baseline"]["diverged"] for p in pairs)


def test_job_diverging_on_the_last_step_ends_diverged(tmp_path, ancestry_file):
    from learngene.jobs import JobManager, JobSpec

    mgr = JobManager(tmp_path / "runs", max_cpu_jobs=1)
    run_id = mgr.start(JobSpec(argv=train_argv(ancestry_file, "--lr", "1e30"), device="cpu"))
    info = mgr.wait(run_id, timeout=180)
    assert (info.state, info.exit_code) == ("diverged", EXIT_DIVERGED), info.log_tail


@pytest.mark.parametrize(("flag", "value", "field"), [
    ("--weight-decay", "inf", "weight_decay"), ("--weight-decay", "nan", "weight_decay"),
    ("--lr", "inf", "lr"), ("--lr", "nan", "lr"),
    ("--label-smoothing", "5", "label_smoothing"), ("--label-smoothing", "1", "label_smoothing"),
    ("--label-smoothing", "-0.1", "label_smoothing"), ("--label-smoothing", "nan", "label_smoothing"),
])
def test_non_finite_or_out_of_range_settings_are_refused_up_front(tmp_path, capsys, flag, value, field):
    # a missing ancestry proves the refusal comes before any loading
    rc = main(["train", "--ancestry", str(tmp_path / "missing.safetensors"), *TINY, flag, value])
    assert rc == EXIT_USAGE and field in one_line_error(capsys)
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: float(value)}).validated()
