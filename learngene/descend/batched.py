"""Train several small models of one architecture as one `torch.func.vmap`-batched model.

`train_batched` is the batched twin of `learngene.train.trainer.Trainer`. K models that share an
architecture, a schedule shape and the number of training images are stacked along a leading model
dimension (`torch.func.stack_module_state`), run forward and backward as one model
(`vmap(functional_call)`), and stepped by an AdamW / SGD-momentum written for the stacked weights
that follows `torch.optim`'s arithmetic with each model's own learning rate and weight decay. Each
model draws its data order and augmentation from its own generator, seeded by its own
`TrainConfig.seed`, in the same order as the sequential Trainer. The results therefore agree with
training the models one after another up to float rounding: batched matmuls sum in another order
than unbatched ones, and timm's fused attention is switched off in the batched model.

Divergence, as the sequential Trainer judges it: a model whose loss becomes NaN or infinite is
frozen from that step on (its weights stay as they were before the bad step, as the sequential
Trainer leaves them); so is one whose weights or buffers are NaN or infinite at the end of an epoch
(the last step's update meets no later loss) or whose test loss is not finite (weights so large that
the outputs overflow). Its record for that epoch has ``diverged: True``, NaN train loss/accuracy and
no test metrics, its history ends there, and the other models train on. No `DivergedError` is
raised; check ``history[-1].get("diverged")``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from learngene.data import normalize
from learngene.errors import ConfigError
from learngene.train.trainer import TrainConfig, _autocast, augment_from_uniforms, lr_at, resolve_device

__all__ = ["augment_from_uniforms", "can_batch", "train_batched"]

Data = tuple[Tensor, Tensor, Tensor | None, Tensor | None]  # train_x, train_y, test_x, test_y
Callback = Callable[[int, dict[str, Any]], None]  # (model index, epoch record)

# settings that every batched model must share; lr, weight_decay and seed may differ (compile is ignored)
SHARED_FIELDS = ("epochs", "batch_size", "optimizer", "schedule", "warmup_epochs", "label_smoothing",
                 "augment", "flip", "device", "amp", "eval_every", "eval_batch_size")
_BETA1, _BETA2, _EPS, _MOMENTUM = 0.9, 0.999, 1e-8, 0.9  # torch.optim defaults used by make_optimizer


def _signature(model: nn.Module) -> tuple:
    params = tuple((n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in model.named_parameters())
    buffers = tuple((n, tuple(b.shape), b.dtype) for n, b in model.named_buffers())
    return type(model), params, buffers


def _random_layers(model: nn.Module) -> list[str]:
    """Names of modules that draw random numbers in training (dropout, drop-path, patch dropout)."""
    found = []
    for name, mod in model.named_modules():
        rate = mod.p if isinstance(mod, nn.modules.dropout._DropoutNd) else None
        rate = rate if rate is not None else getattr(mod, "drop_prob", getattr(mod, "prob", None))
        if isinstance(rate, (int, float)) and rate > 0:
            found.append(name or type(mod).__name__)
    return found


def _check_data(data: Sequence[Data]) -> None:
    shapes = {tuple(d[0].shape) for d in data}
    if len(shapes) != 1:
        raise ConfigError(f"batched models need the same number and size of training images; got shapes "
                          f"{sorted(shapes)}")
    n = next(iter(shapes))[0]
    if n == 0:
        raise ConfigError("the training set is empty")
    if any(len(d[1]) != n for d in data):
        raise ConfigError("each training set needs one label per image")
    test_shapes = {tuple(d[2].shape[1:]) for d in data if d[2] is not None}
    if test_shapes - {tuple(d[0].shape[1:]) for d in data[:1]}:
        raise ConfigError(f"test images must have the training image size {tuple(data[0][0].shape[1:])}")
    if any((d[2] is None) != (d[3] is None) or (d[2] is not None and len(d[2]) != len(d[3])) for d in data):
        raise ConfigError("each test set needs one label per image (or pass None for both)")


def _check(models: Sequence[nn.Module], cfgs: Sequence[TrainConfig], data: Sequence[Data]) -> None:
    """Raise ConfigError saying why these runs cannot train as one batched model."""
    if not models:
        raise ConfigError("batched training needs at least one model")
    if not len(models) == len(cfgs) == len(data):
        raise ConfigError(f"got {len(models)} models, {len(cfgs)} configs and {len(data)} data sets; "
                          "pass one of each per model")
    for cfg in cfgs:
        cfg.validated()
    for i, cfg in enumerate(cfgs[1:], 1):
        diff = [f for f in SHARED_FIELDS if getattr(cfg, f) != getattr(cfgs[0], f)]
        if diff:
            raise ConfigError(f"model {i} differs from model 0 in {diff}; batched models may differ only in "
                              "lr, weight_decay, seed, initial weights and task data")
    sig = _signature(models[0])
    for i, model in enumerate(models[1:], 1):
        if _signature(model) != sig:
            raise ConfigError(f"model {i} does not have the architecture of model 0 (parameter names, shapes, "
                              "dtypes or trainable flags differ); train them one after another")
    if len({p.dtype for p in models[0].parameters() if p.requires_grad}) != 1:
        raise ConfigError("batched training needs trainable parameters, all of one dtype")
    random_layers = _random_layers(models[0])
    if random_layers:
        raise ConfigError(f"layers {random_layers[:4]} use dropout or drop-path, whose random masks a batched "
                          "model cannot draw like separate runs; set their rates to 0 or train one by one")
    _check_data(data)


def can_batch(models: Sequence[nn.Module], cfgs: Sequence[TrainConfig],
              data: Sequence[Data]) -> tuple[bool, str]:
    """(True, "") when `train_batched` accepts these runs, else (False, the reason)."""
    try:
        _check(models, cfgs, data)
    except ConfigError as err:
        return False, str(err)
    return True, ""


class _BatchedOptimizer:
    """AdamW or SGD (momentum 0.9) over a (K, P) weight matrix, one row per model.

    Follows torch.optim's single-tensor arithmetic: AdamW decays weights by (1 - lr * wd) before the
    bias-corrected Adam step; SGD adds wd * w to the gradient before the momentum buffer. Scalars
    that differ per model are computed on the host in float64, as torch.optim does, then cast.
    """

    def __init__(self, flat: Tensor, cfgs: Sequence[TrainConfig]):
        self.flat, self.adamw = flat, cfgs[0].optimizer == "adamw"
        self.wds = [c.weight_decay for c in cfgs]
        self.wd = torch.tensor(self.wds, dtype=flat.dtype, device=flat.device)[:, None]  # (K, 1)
        self.state = [torch.zeros_like(flat) for _ in range(2 if self.adamw else 1)]
        self.t = 0  # steps taken (all live models step together)

    def coefficients(self, lrs: list[list[float]]) -> Tensor:
        """Per-step, per-model multipliers (S, K, 2) for the next S steps with lrs[s][k]."""
        rows = []
        for s, row in enumerate(lrs):
            bc1 = 1 - _BETA1 ** (self.t + s + 1)
            if self.adamw:
                rows.append([(1 - lr * wd, -(lr / bc1)) for lr, wd in zip(row, self.wds, strict=True)])
            else:
                rows.append([(1.0, -lr) for lr in row])
        return torch.tensor(rows, dtype=self.flat.dtype).to(self.flat.device)

    @torch.no_grad()
    def step(self, grad: Tensor, coef: Tensor, keep: Tensor) -> None:
        """Update the rows where `keep` (K, 1) or (K, P) is True; grad (K, P), coef (K, 2)."""
        w = self.flat
        self.t += 1
        if self.adamw:
            m, v = self.state
            m_new = m.lerp(grad, 1 - _BETA1)
            v_new = v.mul(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
            denom = (v_new.sqrt() / (1 - _BETA2 ** self.t) ** 0.5).add_(_EPS)
            w_new = (w * coef[:, :1]).add_(coef[:, 1:] * m_new / denom)
            m.copy_(torch.where(keep, m_new, m))
            v.copy_(torch.where(keep, v_new, v))
        else:
            (buf,) = self.state
            buf_new = buf.mul(_MOMENTUM).add_(grad + self.wd * w)
            w_new = w + coef[:, 1:] * buf_new
            buf.copy_(torch.where(keep, buf_new, buf))
        w.copy_(torch.where(keep, w_new, w))


def _stack_weights(models: Sequence[nn.Module]) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """Stack the models' weights: flat trainable (K, P), params {name: (K, ...)}, buffers {name: (K, ...)}.

    Trainable params are leaf views into the flat matrix, so one optimiser step updates them all.
    """
    params, buffers = stack_module_state(list(models))
    names, k = [n for n, p in models[0].named_parameters() if p.requires_grad], len(models)
    sizes = [params[n][0].numel() for n in names]
    flat = torch.empty(k, sum(sizes), dtype=params[names[0]].dtype, device=params[names[0]].device)
    views, offset = {}, 0
    for name, size in zip(names, sizes, strict=True):
        view = flat[:, offset:offset + size]
        view.copy_(params[name].detach().reshape(k, size))
        views[name] = view.view(params[name].shape).detach().requires_grad_()
        offset += size
    frozen = {n: p.detach() for n, p in params.items() if n not in views}
    return flat, {**views, **frozen}, {n: b.detach() for n, b in buffers.items()}


def _stack_test(data: Sequence[Data], device: torch.device) -> tuple[Tensor, Tensor, Tensor] | None:
    """Test sets padded to one length: images (K, T, C, H, W), labels (K, T), mask (K, T)."""
    sets = [(d[2], d[3]) for d in data]
    if all(x is None for x, _ in sets):
        return None
    size = max(len(x) for x, _ in sets if x is not None)
    shape = next(x.shape[1:] for x, _ in sets if x is not None)
    xs = torch.zeros(len(sets), size, *shape, dtype=torch.uint8, device=device)
    ys = torch.zeros(len(sets), size, dtype=torch.long, device=device)
    mask = torch.zeros(len(sets), size, dtype=torch.bool, device=device)
    for k, (x, y) in enumerate(sets):
        if x is not None:
            xs[k, :len(x)], ys[k, :len(x)], mask[k, :len(x)] = x.to(device), y.to(device), True
    return xs, ys, mask


class _BatchedRun:
    """State of one batched training run; see `train_batched`."""

    def __init__(self, models: Sequence[nn.Module], cfgs: Sequence[TrainConfig], data: Sequence[Data]):
        self.cfgs, self.cfg, self.k = list(cfgs), cfgs[0], len(models)
        self.device = dev = resolve_device(cfgs[0].device)
        self.models = [m.to(dev) for m in models]
        self.flat, self.params, self.buffers = _stack_weights(self.models)
        self.trainable = [n for n, p in self.params.items() if p.requires_grad]
        self.template = copy.deepcopy(self.models[0]).to("meta")  # weights come from functional_call
        for mod in self.template.modules():
            if hasattr(mod, "fused_attn"):
                mod.fused_attn = False  # timm's F.scaled_dot_product_attention has no vmap batching rule
        self.train_x = torch.stack([d[0].to(dev) for d in data])  # (K, N, C, H, W) uint8
        self.train_y = torch.stack([d[1].to(dev) for d in data]).long()  # (K, N)
        self.test = _stack_test(data, dev)
        self.has_test = [d[2] is not None for d in data]
        self.opt = _BatchedOptimizer(self.flat, cfgs)
        self.gens = [torch.Generator(device="cpu").manual_seed(c.seed) for c in cfgs]
        self.alive = torch.ones(self.k, dtype=torch.bool, device=dev)
        self.steps_done = torch.zeros(self.k, dtype=torch.long, device=dev)
        self.col_keep: Tensor | None = None  # (1, P) False for trainable weights that get no gradient
        self._vlogits = vmap(self._logits)
        self._vloss = vmap(self._loss)

    def _logits(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        return functional_call(self.template, (params, buffers), (x,))  # (B, classes) per model

    def _loss(self, params: dict, buffers: dict, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = self._logits(params, buffers, x)
        return F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing), logits

    def _draw(self, steps: int) -> tuple[Tensor, Tensor | None]:
        """Each model's epoch order (K, N) and augmentation draws (K, N, 3), as the Trainer draws them."""
        n, bs = self.train_x.shape[1], self.cfg.batch_size
        orders, draws = [], []
        for gen in self.gens:
            orders.append(torch.randperm(n, generator=gen, device=gen.device))
            if self.cfg.augment:
                draws.append(torch.cat([torch.rand(min(bs, n - s * bs), 3, generator=gen, device=gen.device)
                                        for s in range(steps)]))
        u = torch.stack(draws).to(self.device) if draws else None
        return torch.stack(orders).to(self.device), u

    def _flat_grad(self) -> Tensor:
        grads = [self.params[n].grad for n in self.trainable]
        if self.col_keep is None:
            self.col_keep = torch.cat([torch.full((1, self.params[n][0].numel()), g is not None, device=self.device)
                                       for n, g in zip(self.trainable, grads, strict=True)], 1)
            if bool(self.col_keep.all()):
                self.col_keep = torch.ones(1, 1, dtype=torch.bool, device=self.device)
        flat = torch.cat([(torch.zeros_like(self.params[n]) if g is None else g).reshape(self.k, -1)
                          for n, g in zip(self.trainable, grads, strict=True)], 1)  # (K, P)
        for n in self.trainable:
            self.params[n].grad = None
        return flat

    def _step(self, xb: Tensor, yb: Tensor, coef: Tensor) -> tuple[Tensor, Tensor]:
        """One step of all models on xb (K, B, C, H, W); returns summed losses and correct counts (K,)."""
        before = self.alive
        saved = {n: b.clone() for n, b in self.buffers.items()}
        with _autocast(self.device, self.cfg.amp):
            losses, logits = self._vloss(self.params, self.buffers, xb, yb)  # (K,), (K, B, classes)
        alive = before & torch.isfinite(losses)
        torch.where(alive, losses, 0.0).sum().backward()  # models' gradients are independent
        grad = self._flat_grad()  # (K, P)
        self.opt.step(grad, coef, alive[:, None] & self.col_keep)
        with torch.no_grad():
            for name, buf in self.buffers.items():  # a frozen model keeps its running statistics
                mask = before.view(-1, *[1] * (buf.dim() - 1))
                buf.copy_(torch.where(mask, buf, saved[name]))
        self.alive, self.steps_done = alive, self.steps_done + alive
        losses, correct = losses.detach() * yb.shape[1], (logits.detach().argmax(-1) == yb).sum(1)
        return torch.where(alive, losses, 0.0), torch.where(alive, correct, 0)

    def train_epoch(self, epoch: int) -> tuple[list[list[float]], Tensor, Tensor]:
        """Train one epoch; returns lrs[step][model], loss sums (K,) and correct counts (K,)."""
        cfg, k, bs = self.cfg, self.k, self.cfg.batch_size
        steps = math.ceil(self.train_x.shape[1] / bs)
        order, u = self._draw(steps)
        lrs = [[lr_at(c, (epoch + s / steps) / cfg.epochs) for c in self.cfgs] for s in range(steps)]
        coefs = self.opt.coefficients(lrs)  # (S, K, 2)
        rows = torch.arange(k, device=self.device)[:, None]
        loss_sum = torch.zeros(k, device=self.device)
        correct = torch.zeros(k, dtype=torch.long, device=self.device)
        self.template.train()
        for s in range(steps):
            idx = order[:, s * bs:(s + 1) * bs]  # (K, B)
            xb = normalize(self.train_x[rows, idx].flatten(0, 1))  # (K*B, C, H, W)
            if cfg.augment:
                xb = augment_from_uniforms(xb, u[:, s * bs:(s + 1) * bs].flatten(0, 1), flip=cfg.flip)
            step_loss, step_correct = self._step(xb.view(k, -1, *xb.shape[1:]), self.train_y[rows, idx], coefs[s])
            loss_sum += step_loss
            correct += step_correct
        return lrs, loss_sum, correct

    @torch.no_grad()
    def check_state(self) -> None:
        """Freeze the models whose weights or buffers are no longer all finite (the Trainer's end-of-epoch check)."""
        ok = torch.ones(self.k, dtype=torch.bool, device=self.device)
        for t in (*self.params.values(), *self.buffers.values()):
            if t.is_floating_point():
                ok &= torch.isfinite(t.detach().reshape(self.k, -1)).all(1)
        self.alive = self.alive & ok

    @torch.no_grad()
    def evaluate(self) -> tuple[list[float], list[float]]:
        """Mean cross-entropy and accuracy of every model on its own test set."""
        xs, ys, mask = self.test
        k, bs = self.k, self.cfg.eval_batch_size
        loss = torch.zeros(k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(k, dtype=torch.long, device=self.device)
        self.template.eval()
        for i in range(0, xs.shape[1], bs):
            xb = normalize(xs[:, i:i + bs].flatten(0, 1))  # (K*B, C, H, W)
            yb, mb = ys[:, i:i + bs], mask[:, i:i + bs]  # (K, B)
            with _autocast(self.device, self.cfg.amp):
                logits = self._vlogits(self.params, self.buffers, xb.view(k, -1, *xb.shape[1:]))
            ce = F.cross_entropy(logits.float().flatten(0, 1), yb.flatten(), reduction="none").view(k, -1)
            loss += torch.where(mb, ce, 0.0).sum(1).double()
            correct += ((logits.argmax(-1) == yb) & mb).sum(1)
        self.template.train()
        count = mask.sum(1).clamp(min=1)
        return (loss / count).tolist(), (correct.double() / count).tolist()

    @torch.no_grad()
    def unstack(self) -> None:
        """Copy the trained weights and buffers back into the caller's models."""
        for k, model in enumerate(self.models):
            for name, p in model.named_parameters():
                p.copy_(self.params[name][k])
            for name, b in model.named_buffers():
                b.copy_(self.buffers[name][k])


def _epoch_records(run: _BatchedRun, epoch: int, lrs: list[list[float]], sums: Tensor, correct: Tensor,
                   done: list[bool], epoch_time: float) -> dict[int, dict[str, Any]]:
    """Per-model records of one epoch, in the sequential Trainer's form; marks newly diverged models."""
    n, steps = run.train_x.shape[1], len(lrs)
    loss, acc, alive, steps_done = torch.stack(
        [sums.double(), correct.double(), run.alive.double(), run.steps_done.double()]).tolist()
    records = {}
    for k in range(run.k):
        if done[k]:
            continue
        rec: dict[str, Any] = {"epoch": epoch + 1, "step": int(steps_done[k])}
        if alive[k]:
            rec.update(train_loss=loss[k] / n, train_acc=acc[k] / n, lr=lrs[-1][k])
        else:
            # the step whose loss was not finite, or the last one when the weights it left were not finite
            bad_step = min(int(steps_done[k]) - epoch * steps, steps - 1)
            rec.update(train_loss=float("nan"), train_acc=float("nan"), lr=lrs[bad_step][k])
            done[k] = True
        rec.update(epoch_time=epoch_time, img_per_s=n / max(epoch_time, 1e-9))
        if not alive[k]:
            rec["diverged"] = True
        records[k] = rec
    return records


def _add_test_metrics(run: _BatchedRun, records: dict[int, dict[str, Any]], done: list[bool]) -> None:
    """Evaluate; a model whose test loss is not finite is marked diverged and frozen, as in the Trainer."""
    test_loss, test_acc = run.evaluate()
    for k, rec in records.items():
        if not run.has_test[k] or rec.get("diverged"):
            continue
        if math.isfinite(test_loss[k]):
            rec["test_loss"], rec["test_acc"] = test_loss[k], test_acc[k]
        else:
            rec.update(train_loss=float("nan"), train_acc=float("nan"), diverged=True)
            done[k] = True
            run.alive[k] = False


def train_batched(models: Sequence[nn.Module], cfgs: Sequence[TrainConfig], data: Sequence[Data],
                  callback: Callback | None = None) -> list[list[dict[str, Any]]]:
    """Train `models[k]` on `data[k]` = (train_x, train_y, test_x, test_y) with `cfgs[k]`, all at once.

    Returns one history per model in the sequential Trainer's record form (epoch, step, train_loss,
    train_acc, lr, epoch_time, img_per_s, test_loss, test_acc, time); `epoch_time` is the wall time
    of the joint epoch, so `img_per_s` is per model (the batch as a whole did K times as many).
    `callback(k, record)` runs after each epoch for each model still training. The trained weights
    are copied back into `models`, which end up on the training device. Raises ConfigError when the
    runs cannot be batched (`can_batch` says why without raising). `cfg.compile` is ignored.
    """
    _check(models, cfgs, data)
    run = _BatchedRun(models, cfgs, data)
    cfg, histories = run.cfg, [[] for _ in models]
    done = [False] * run.k
    start = time.perf_counter()
    try:
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            lrs, sums, correct = run.train_epoch(epoch)
            run.check_state()
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            records = _epoch_records(run, epoch, lrs, sums, correct, done, time.perf_counter() - t0)
            eval_now = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
            if run.test is not None and eval_now and any(not r.get("diverged") for r in records.values()):
                _add_test_metrics(run, records, done)
            for k, rec in records.items():
                rec["time"] = time.perf_counter() - start
                histories[k].append(rec)
                if callback is not None:
                    callback(k, rec)
            if all(done):
                break
    finally:
        run.unstack()
    return histories
