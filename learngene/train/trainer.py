"""A small generic trainer for image classifiers, with callbacks.

The loop knows nothing about the UI or the run folder: logging, progress bars and job heartbeats
plug in through `Trainer.add_callback` (as in minGPT's Trainer). Data are uint8 image tensors that
stay resident on the training device; they are normalised and augmented per batch. Streamed images (a
`learngene.data.stream.LazyImages`, e.g. a large folder's) stay on disk instead: each epoch's batches
are read by a torch DataLoader with worker processes, in the same order and with the same
augmentation as in-memory images would be, so a run's memory grows with the batch, not the data set. The data order
and augmentation draw from a generator seeded by `TrainConfig.seed` alone, so a learngene
descendant and its random-init baseline see exactly the same batches.
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from learngene.data import normalize
from learngene.data.stream import LazyImages, batch_loader
from learngene.errors import ConfigError, DivergedError
from learngene.train.config import TrainConfig

Event = Literal["on_epoch_end", "on_batch_end", "on_train_end"]


GPU_PATHS_ENV = "LEARNGENE_GPU_PATHS"


def gpu_paths(device: torch.device) -> bool:
    """Whether training on `device` takes the GPU code paths: `torch.compile` (when `cfg.compile`), bf16
    autocast (when `cfg.amp`), and the divergence check once per epoch instead of every step (a per-step
    check would sync the host every step). True on CUDA. On the CPU it is True only when the environment
    sets LEARNGENE_GPU_PATHS=1: a switch for tests, so that a machine without a GPU runs the GPU's own
    code (torch runs compile and bf16 autocast on the CPU too; slower there, and bf16 is less exact)."""
    return device.type == "cuda" or os.environ.get(GPU_PATHS_ENV, "") == "1"


def resolve_device(device: str) -> torch.device:
    """Map 'auto' to CUDA when present; refuse 'cuda' on a machine without it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


def augment_from_uniforms(x: torch.Tensor, u: torch.Tensor, max_shift: int = 3, flip: bool = True) -> torch.Tensor:
    """Flip and shift `x` by given uniform draws `u` (B, 3): u[:, 0] < 0.5 flips horizontally (when `flip`;
    the draw is consumed either way, so the shifts do not depend on it), u[:, 1:] shift by up to
    `max_shift` pixels (edge padded). Shared with the vmap-batched trainer."""
    b, _, h, w = x.shape  # (B, C, H, W) float
    u = u.to(x.device)
    if flip:
        x = torch.where((u[:, 0] < 0.5)[:, None, None, None], x.flip(3), x)
    shift = (u[:, 1:] * 2 - 1) * (2 * max_shift / torch.tensor([w, h], device=x.device))  # (B, 2)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, :, 2] = shift.round(decimals=2).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)


def augment_batch(x: torch.Tensor, gen: torch.Generator, max_shift: int = 3, flip: bool = True) -> torch.Tensor:
    """Random horizontal flip (when `flip`) and translation by up to `max_shift` pixels (edge padded)."""
    u = torch.rand(x.shape[0], 3, generator=gen, device=gen.device)
    return augment_from_uniforms(x, u, max_shift, flip)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 500,
    device: torch.device | None = None, amp: bool = True,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on uint8 images `x` (a tensor, or streamed `LazyImages`
    read through a DataLoader) with labels `y`."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    starts = range(0, len(x), batch_size)
    streamed = None
    if isinstance(x, LazyImages):
        streamed = iter(batch_loader(x, [torch.arange(i, min(i + batch_size, len(x))) for i in starts],
                                     pin_memory=device.type == "cuda"))
    for i in starts:
        chunk = next(streamed) if streamed is not None else x[i:i + batch_size]
        xb = normalize(chunk.to(device, non_blocking=True))
        yb = y[i:i + batch_size].to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(xb)
        total_loss += F.cross_entropy(logits.float(), yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train(was_training)
    n = max(len(x), 1)
    return total_loss / n, correct / n


def _autocast(device: torch.device, amp: bool):
    if amp and gpu_paths(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at `progress` in [0, 1) of training (linear warm-up, then cosine or constant)."""
    warm = cfg.warmup_epochs / cfg.epochs
    if warm > 0 and progress < warm:
        return cfg.lr * (progress / warm)
    if cfg.schedule == "constant":
        return cfg.lr
    p = (progress - warm) / max(1e-12, 1 - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(max(p, 0.0), 1.0)))


def state_is_finite(model: nn.Module) -> bool:
    """Whether every floating-point parameter and buffer of `model` is finite (one host sync)."""
    flags = [torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _rng_state(device: torch.device) -> tuple[Any, Any]:
    """The global random-number state (CPU, and the device's on CUDA)."""
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(device: torch.device, state: tuple[Any, Any]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class Trainer:
    """Trains `model` on uint8 images; evaluates on a held-out set every `eval_every` epochs.

    Each epoch ends with a record {epoch, step, train_loss, train_acc, test_loss, test_acc, lr,
    time, epoch_time, img_per_s} passed to the `on_epoch_end` callbacks and kept in `history`.
    Divergence: a NaN or infinite training loss (checked every step on a CPU, every epoch on CUDA:
    `check_every_step`, see `gpu_paths`; data-parallel training checks every epoch too, so that all
    processes stop at the same step),
    NaN or infinite weights or buffers at the end of an epoch (so the last step's update counts too),
    or a non-finite test loss (weights so large that the outputs overflow). The epoch's record then has
    ``diverged: True``, NaN train loss/accuracy and no test metrics; training stops, and `run` raises
    `DivergedError` after the `on_train_end` callbacks ran.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, train_x: torch.Tensor, train_y: torch.Tensor,
                 test_x: torch.Tensor | None = None, test_y: torch.Tensor | None = None):
        self.cfg = cfg.validated()
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.streamed = isinstance(train_x, LazyImages)  # batches come through a DataLoader
        self.train_x = train_x if self.streamed else train_x.to(self.device)
        self.train_y = train_y.to(self.device)
        self.test_x = test_x if test_x is None or isinstance(test_x, LazyImages) else test_x.to(self.device)
        self.test_y = None if test_y is None else test_y.to(self.device)
        if len(self.train_x) == 0:
            raise ConfigError("the training set is empty")
        self.optimizer = make_optimizer(self.model.parameters(), cfg)
        self.callbacks: dict[str, list[Callable]] = defaultdict(list)
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.diverged = False
        self.stop_requested = False  # set by a callback (`request_stop`): the run ends after this epoch
        self.gpu_paths = gpu_paths(self.device)
        self.check_every_step = not self.gpu_paths  # else once per epoch (the summed loss and the weights)
        self._forward = model
        if cfg.compile and self.gpu_paths:
            self._forward = torch.compile(model)
        # The code paths this run takes, as observed: recorded with its result (`RunResult.paths`), so a
        # run folder shows whether it trained compiled, in bf16 and with which divergence check.
        self.paths: dict[str, Any] = {"compute_dtype": None, "compiled": self._forward is not model,
                                      "divergence_check": "step" if self.check_every_step else "epoch"}

    def add_callback(self, event: Event, fn: Callable) -> None:
        self.callbacks[event].append(fn)

    def evaluate_now(self) -> tuple[float, float] | None:
        """(test loss, test accuracy) of the model as it is now; None without a test set."""
        if self.test_x is None:
            return None
        return evaluate(self.model, self.test_x, self.test_y, batch_size=self.cfg.eval_batch_size, device=self.device,
                        amp=self.cfg.amp)

    def request_stop(self) -> None:
        """End the run after the current epoch (an adaptive budget's callback calls it)."""
        self.stop_requested = True

    def _fire(self, event: str, *args) -> None:
        for fn in self.callbacks[event]:
            fn(self, *args)

    def _train_epoch(self, epoch: int, gen: torch.Generator) -> tuple[float, float]:
        cfg, n = self.cfg, len(self.train_x)
        steps = math.ceil(n / cfg.batch_size)
        order = torch.randperm(n, generator=gen, device=gen.device).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        batches = None
        if self.streamed:  # the same batches, read ahead by DataLoader workers
            cpu_order = order.cpu()
            batches = iter(batch_loader(self.train_x, [cpu_order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                                                       for s in range(steps)],
                                        pin_memory=self.device.type == "cuda"))
        self.model.train()
        for s in range(steps):
            lr = lr_at(cfg, (epoch + s / steps) / cfg.epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            if batches is not None:
                xb = normalize(next(batches).to(self.device, non_blocking=True))  # (B, 3, H, W)
            else:
                xb = normalize(self.train_x[idx])  # (B, 3, H, W)
            yb = self.train_y[idx]
            if cfg.augment:
                xb = augment_batch(xb, gen, flip=cfg.flip)
            with _autocast(self.device, cfg.amp):
                logits = self._forward(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
            self.paths["compute_dtype"] = str(logits.dtype).removeprefix("torch.")  # bfloat16 under autocast
            # On CUDA a per-step check would sync the host every step: there the epoch's summed loss
            # is checked instead, so at most one epoch of steps is spent before a divergence stops it.
            if self.check_every_step and not torch.isfinite(loss):
                self.diverged = True
                return float("nan"), float("nan")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
            self._fire("on_batch_end", s, steps)
        # The last step's update is checked here: weights it made NaN or infinite meet no later loss.
        if not torch.isfinite(loss_sum) or not state_is_finite(self.model):
            self.diverged = True
            return float("nan"), float("nan")
        return loss_sum.item() / n, correct.item() / n

    def run(self) -> list[dict[str, Any]]:
        """Train for `cfg.epochs` epochs and return the per-epoch history."""
        self.begin()
        while self.epoch():
            pass
        return self.end()

    # A run in steps, so that two trainers can advance in lockstep (a descendant and its baseline, epoch by
    # epoch): `begin`, then `epoch` until it returns False, then `end`. Each trainer keeps its own random-number
    # state (the global one, which it seeds, as well as its data-order generator) across the other's epochs,
    # and its own wall time, so results and the time each model took are those of a run on its own.
    def begin(self) -> None:
        """Seed, and start the clock."""
        torch.manual_seed(self.cfg.seed)
        self._gen = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
        self._rng = _rng_state(self.device)
        self._epoch, self.elapsed = 0, 0.0

    def epoch(self) -> bool:
        """Train (and evaluate) one epoch; False when the run is over: every epoch done, diverged, or stopped."""
        _set_rng_state(self.device, self._rng)
        t0 = time.perf_counter()
        rec = self._one_epoch(self._epoch)
        self.elapsed += time.perf_counter() - t0
        rec["time"] = self.elapsed
        self._rng = _rng_state(self.device)
        self._epoch += 1
        self.history.append(rec)
        self._fire("on_epoch_end", rec)
        return not (self.diverged or self.stop_requested) and self._epoch < self.cfg.epochs

    def end(self) -> list[dict[str, Any]]:
        """Finish: the `on_train_end` callbacks, then `DivergedError` if the run diverged; the history."""
        self._fire("on_train_end")
        if self.diverged:
            raise DivergedError(f"training diverged at epoch {len(self.history)} (loss or weights became NaN or "
                                "infinite); try a smaller learning rate")
        return self.history

    def _one_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        t0 = time.perf_counter()
        train_loss, train_acc = self._train_epoch(epoch, self._gen)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        epoch_time = time.perf_counter() - t0
        rec: dict[str, Any] = {
            "epoch": epoch + 1, "step": self.step, "train_loss": train_loss, "train_acc": train_acc,
            "lr": self.optimizer.param_groups[0]["lr"], "epoch_time": epoch_time,
            "img_per_s": len(self.train_x) / max(epoch_time, 1e-9),
        }
        if self.diverged:
            rec["diverged"] = True
        elif self.test_x is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            test_loss, test_acc = evaluate(self.model, self.test_x, self.test_y, batch_size=cfg.eval_batch_size,
                                           device=self.device, amp=cfg.amp)
            if math.isfinite(test_loss):
                rec["test_loss"], rec["test_acc"] = test_loss, test_acc
            else:  # finite weights so large that the outputs overflow: as diverged as NaN weights
                self.diverged = True
                rec.update(train_loss=float("nan"), train_acc=float("nan"), diverged=True)
        return rec
