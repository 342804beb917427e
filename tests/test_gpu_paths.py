"""The GPU's own code paths, run on the CPU: no GPU has run this code yet.

On CUDA the trainer takes three branches a CPU run never takes: `torch.compile` (with `--compile`), bf16
autocast (`amp`, on by default) and the divergence check once per epoch instead of every step (a
per-step check would sync the host every step). `LEARNGENE_GPU_PATHS=1` (see
`learngene.train.trainer.gpu_paths`) makes the CPU take them too; torch runs compile (inductor, C++)
and bf16 autocast on the CPU. Checked here with tiny models: each path trains to finite losses close
to the plain fp32 run, really runs in bf16 / compiled, and the per-epoch check stops a divergence at
the end of the epoch it happened in; the batched (vmap) trainer under bf16 autocast; and a whole
`learngene train` command under the switch.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from learngene.descend.batched import train_batched
from learngene.errors import DivergedError
from learngene.train.trainer import GPU_PATHS_ENV, TrainConfig, Trainer, gpu_paths


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models; two threads crawl on a loaded 2-core machine."""


@pytest.fixture
def gpu_like(monkeypatch):
    """Take the GPU code paths on the CPU for this test."""
    monkeypatch.setenv(GPU_PATHS_ENV, "1")


def tiny_vit(depth: int = 1) -> nn.Module:
    return VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=depth, num_heads=2, num_classes=3)


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


def task(seed: int, n_train: int = 24, n_test: int = 12) -> tuple[torch.Tensor, ...]:
    """A 3-way task whose classes differ in brightness (learnable in a few steps); uint8 images."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_train + n_test) % 3
    base = (labels * 80 + 20).to(torch.float32)[:, None, None, None]
    images = (base + torch.randint(0, 30, (n_train + n_test, 3, 32, 32), generator=g)).clamp(0, 255).to(torch.uint8)
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


def train(model: nn.Module, cfg: TrainConfig, data=None) -> Trainer:
    trainer = Trainer(model, cfg, *(data or task(0)))
    try:
        trainer.run()
    except DivergedError:
        pass
    return trainer


def assert_finite_and_close(got: list[dict], ref: list[dict], tol: float) -> None:
    """Same epochs and steps; every metric finite and within `tol` of the fp32 reference."""
    assert [(r["epoch"], r["step"]) for r in got] == [(r["epoch"], r["step"]) for r in ref]
    for a, b in zip(got, ref, strict=True):
        assert not a.get("diverged")
        for key in ("train_loss", "test_loss", "test_acc"):
            assert math.isfinite(a[key]), (key, a)
            assert a[key] == pytest.approx(b[key], abs=tol), (key, a, b)


def test_the_switch_is_off_by_default_and_cuda_takes_the_gpu_paths(monkeypatch):
    monkeypatch.delenv(GPU_PATHS_ENV, raising=False)
    assert not gpu_paths(torch.device("cpu")) and gpu_paths(torch.device("cuda"))
    trainer = Trainer(tiny_cnn(), TrainConfig(epochs=1, batch_size=8, device="cpu", compile=True), *task(0))
    assert trainer.check_every_step and trainer._forward is trainer.model  # no compile on a plain CPU run
    monkeypatch.setenv(GPU_PATHS_ENV, "1")
    assert gpu_paths(torch.device("cpu"))


def test_bf16_autocast_trains_finite_and_close_to_fp32(gpu_like):
    cfg = TrainConfig(epochs=4, batch_size=8, lr=3e-3, device="cpu", seed=0)
    torch.manual_seed(0)
    model = tiny_vit()
    ref_model = copy.deepcopy(model)
    dtypes = []
    model.head.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    got = train(model, cfg)
    ref = train(ref_model, TrainConfig(**{**cfg.to_dict(), "amp": False}))  # fp32: autocast off
    assert set(dtypes) == {torch.bfloat16}  # training and evaluation ran under bf16 autocast
    assert got.paths == {"compute_dtype": "bfloat16", "compiled": False, "divergence_check": "epoch"}
    assert ref.paths["compute_dtype"] == "float32"
    assert got.history != ref.history  # bf16 rounding shows: it is not the fp32 run
    assert_finite_and_close(got.history, ref.history, tol=0.1)
    assert got.history[-1]["test_acc"] > 0.5  # and it learned the (easy) task
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32


@pytest.mark.slow
def test_torch_compile_with_bf16_trains_a_vit_finite_and_close_to_eager(gpu_like):
    """The GPU configuration (`--compile`, amp on): inductor compiles the training forward on the CPU (~30 s)."""
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, device="cpu", seed=0, compile=True)
    torch.manual_seed(0)
    model = tiny_vit()
    ref_model = copy.deepcopy(model)
    trainer = Trainer(model, cfg, *task(0))
    assert isinstance(trainer._forward, torch._dynamo.eval_frame.OptimizedModule)
    trainer.run()
    assert trainer.paths == {"compute_dtype": "bfloat16", "compiled": True, "divergence_check": "epoch"}
    ref = train(ref_model, TrainConfig(**{**cfg.to_dict(), "compile": False}))  # eager, bf16 autocast
    assert_finite_and_close(trainer.history, ref.history, tol=0.1)
    # the compiled forward shares the model's weights: evaluation (eager) sees the trained model
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("amp", [False, True])
def test_the_per_epoch_divergence_check_stops_at_the_end_of_the_epoch(monkeypatch, amp):
    """SGD at lr 1e30 blows up in the 2nd step. Per step (CPU): stopped before that step's update.
    Per epoch (GPU): the epoch's 3 steps all run, then the summed loss / the weights stop it."""
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e30, optimizer="sgd", device="cpu", seed=0, amp=amp)
    torch.manual_seed(0)
    model = tiny_cnn()
    gpu_model = copy.deepcopy(model)
    monkeypatch.delenv(GPU_PATHS_ENV, raising=False)
    cpu = train(model, cfg)
    monkeypatch.setenv(GPU_PATHS_ENV, "1")
    gpu = train(gpu_model, cfg)
    assert cpu.check_every_step and not gpu.check_every_step
    assert cpu.step == 1 and gpu.step == 3  # 24 images, batch 8: the whole first epoch on the GPU path
    for trainer in (cpu, gpu):
        (rec,) = trainer.history
        assert rec["epoch"] == 1 and rec["diverged"] is True and math.isnan(rec["train_loss"])
        assert "test_loss" not in rec and trainer.diverged
    with pytest.raises(DivergedError, match="diverged at epoch 1"):
        Trainer(copy.deepcopy(gpu_model), cfg, *task(0)).run()


def test_the_per_epoch_check_catches_a_nan_in_the_last_step_of_an_epoch(gpu_like):
    """A NaN planted in the weights before the last step of the first epoch: that step runs (its update too),
    and the end of the epoch stops the run, before a second epoch starts."""
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, device="cpu", seed=0)
    model = tiny_cnn()
    trainer = Trainer(model, cfg, *task(0))

    def plant(tr: Trainer, step: int, steps: int) -> None:
        if step == steps - 2:  # after the second-to-last step: the last step meets NaN weights
            with torch.no_grad():
                model[-1].weight[0, 0] = float("nan")

    trainer.add_callback("on_batch_end", plant)
    with pytest.raises(DivergedError):
        trainer.run()
    assert trainer.step == 3 and len(trainer.history) == 1 and trainer.history[0]["diverged"]


def test_batched_training_under_bf16_autocast(gpu_like):
    """The vmap-batched trainer in bf16: finite, close to the sequential bf16 runs, and a diverging member
    is frozen while the others train on."""
    torch.manual_seed(0)
    models = [tiny_vit() for _ in range(3)]
    cfgs = [TrainConfig(epochs=3, batch_size=8, lr=lr, device="cpu", seed=k) for k, lr in enumerate([3e-3, 1e30, 1e-3])]
    data = [task(10 + k) for k in range(3)]
    ref_models = [copy.deepcopy(m) for m in models]
    got = train_batched(models, cfgs, data)
    refs = [train(m, c, d).history for m, c, d in zip(ref_models, cfgs, data, strict=True)]
    assert got[1][-1]["diverged"] is True and len(got[1]) == 1 and refs[1][-1]["diverged"] is True
    assert all(torch.isfinite(p).all() for p in models[1].parameters())  # frozen before the bad update
    for k in (0, 2):
        assert_finite_and_close(got[k], refs[k], tol=0.1)


@pytest.mark.parametrize("switch", ["1", ""], ids=["gpu-paths", "cpu-paths"])
def test_a_train_command_runs_on_the_gpu_paths(switch, monkeypatch, ancestry_file, tmp_path, capsys):
    """The whole `learngene train` (descendant + baseline, records, summary) in bf16 with the per-epoch check,
    as its run folder records: each model's code paths, observed by the Trainer, are in its pair record. Without
    the switch the same command records the CPU's paths (fp32, per-step check), so the record tells them apart."""
    from learngene.cli import main
    from learngene.runlog import read_jsonl

    monkeypatch.setenv(GPU_PATHS_ENV, switch)
    argv = ["train", "--ancestry", str(ancestry_file), "--layers", "0", "--images-per-class", "30", "--n-way", "3",
            "--k-shot", "5", "--test-per-class", "5", "--epochs", "2", "--batch-size", "5", "--device", "cpu",
            "--run-dir", str(tmp_path / "run")]
    assert main(argv) == 0
    capsys.readouterr()
    records, _ = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert len(epochs) == 4 and all(math.isfinite(r["train_loss"]) and 0 <= r["test_acc"] <= 1 for r in epochs)
    (pair,) = [r for r in records if r["kind"] == "pair"]
    expected = ({"compute_dtype": "bfloat16", "compiled": False, "divergence_check": "epoch"} if switch else
                {"compute_dtype": "float32", "compiled": False, "divergence_check": "step"})
    assert pair["learngene"]["paths"] == pair["baseline"]["paths"] == expected
