"""Auto-LG's similarity: meta-learned matching weights between ancestry and pseudo-descendant layers.

Auto-LG (Wang et al., 2023, the Learngene seed paper) trains the pseudo-descendant with the
feature-matching loss of "Learning What and Where to Transfer" (L2T-ww; Jang et al., ICML 2019):

    L = CE(pd(x), y) + λ Σ_{m,n} w_mn(x) · mean ‖F_anc^m(x) − A_mn(F_pd^n(x))‖²

Two normalisations (see `CondenseConfig`): the λ term is the mean over the M·P pairs rather than
their sum, and by default each distance is divided by mean ‖F_anc^m(x)‖² (`match_norm`), so neither
the number of pairs nor the growing norm of deep ViT residual streams lets matching drown the CE.

- `A_mn`: a linear map on tokens (ViT) or a 1×1 conv (CNN) from pseudo-descendant layer n to
  ancestry layer m's width, with the map resampled to m's spatial size where they differ.
- `w_mn(x) = ReLU6(Linear_m(GAP(F_anc^m(x))))`: zero weights and bias 1 at the start, so every
  pair starts with weight 1 and the meta-gradient alone separates them.
- Bilevel step (L2T-ww): one functional SGD step θ' = θ − α ∇_θ L (kept differentiable), then
  the weight nets take an Adam (or SGD) step to lower CE(pd_θ'(x_next), y_next) on the next batch. The
  pseudo-descendant and adapters take an AdamW step on the same ∇L (weights before their update).
The ancestry stays frozen. The similarity matrix is the mean of w_mn(x) over held-out images.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from learngene.condense.config import CondenseConfig
from learngene.condense.methods import MethodOutput, _advance
from learngene.condense.pseudo import OpenWorld, build_pseudo_descendant, pd_quality, train_config
from learngene.data import normalize
from learngene.errors import DivergedError
from learngene.models import family_of, layer_view
from learngene.reporting import Reporter
from learngene.train.trainer import augment_batch, evaluate, lr_at, make_optimizer, resolve_device


def _gap(f: torch.Tensor) -> torch.Tensor:
    """Global average pool: ViT tokens (B, N, D) → (B, D); CNN maps (B, C, H, W) → (B, C)."""
    return f.mean(1) if f.ndim == 3 else f.mean((2, 3))


def _resample(f: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Bring a map (B, C, H, W) or token sequence (B, N, D) to the spatial / token size `size`."""
    if f.ndim == 4 and tuple(f.shape[2:]) != size:
        if f.shape[2] >= size[0]:
            return F.adaptive_avg_pool2d(f, size)
        return F.interpolate(f, size=size, mode="bilinear", align_corners=False)
    if f.ndim == 3 and f.shape[1] != size[0]:  # token counts differ: resample along the sequence
        return F.interpolate(f.transpose(1, 2), size=size[0], mode="linear").transpose(1, 2)
    return f


class MatchingWeights(nn.Module):
    """w_mn(x) = ReLU6(Linear_m(GAP(F_anc^m(x)))), for every ancestry layer m: (B, M, P)."""

    def __init__(self, anc_widths: list[int], n_pd: int):
        super().__init__()
        self.nets = nn.ModuleList(nn.Linear(w, n_pd) for w in anc_widths)
        for net in self.nets:
            nn.init.zeros_(net.weight)
            nn.init.ones_(net.bias)

    def forward(self, anc_feats: list[torch.Tensor]) -> torch.Tensor:
        w = [F.relu6(net(_gap(f))) for net, f in zip(self.nets, anc_feats, strict=True)]  # M × (B, P)
        return torch.stack(w, 1)  # (B, M, P)


class Adapters(nn.Module):
    """A_mn: pseudo-descendant layer n → ancestry layer m (Linear on tokens, 1×1 conv on maps)."""

    def __init__(self, anc_widths: list[int], pd_widths: list[int], maps: bool):
        super().__init__()
        make = (lambda i, o: nn.Conv2d(i, o, 1)) if maps else (lambda i, o: nn.Linear(i, o))
        self.pairs = nn.ModuleList(nn.ModuleList(make(p, a) for p in pd_widths) for a in anc_widths)

    def distances(self, anc: list[torch.Tensor], pd: list[torch.Tensor], relative: bool) -> torch.Tensor:
        """Per-sample mean squared distance of every pair: (B, M, P).

        With `relative`, each distance is divided by the sample's mean square of F_anc^m, so layers
        whose outputs have large norms (deep ViT residual streams) do not dominate the loss.
        """
        rows = []
        for m, fa in enumerate(anc):
            scale = fa.pow(2).flatten(1).mean(1).clamp_min(1e-6) if relative else 1.0  # (B,)
            cols = []
            for n, fp in enumerate(pd):
                z = self.pairs[m][n](fp)  # (B, C_m, h, w) or (B, N, D_m)
                z = _resample(z, tuple(fa.shape[2:]) if fa.ndim == 4 else (fa.shape[1],))
                cols.append((fa - z).pow(2).flatten(1).mean(1) / scale)  # (B,)
            rows.append(torch.stack(cols, 1))
        return torch.stack(rows, 1)


@contextmanager
def _capture(modules: list[nn.Module]):
    """Collect the outputs of `modules` (in order) during forward passes, also under functional_call."""
    store: dict[int, torch.Tensor] = {}

    def keep(i: int, _m, _inp, out) -> None:
        store[i] = out
    handles = [m.register_forward_hook(partial(keep, i)) for i, m in enumerate(modules)]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


class _AutoLG:
    """State of one Auto-LG run: frozen ancestry, pseudo-descendant, adapters, weight nets."""

    def __init__(self, ancestry: nn.Module, data: OpenWorld, cfg: CondenseConfig):
        self.cfg, self.device = cfg, resolve_device(cfg.device)
        self.anc = ancestry.to(self.device).eval()  # frozen: only read under no_grad
        self.pd = build_pseudo_descendant(ancestry, len(data.classes), cfg).to(self.device)
        self.anc_view, pd_view = layer_view(self.anc), layer_view(self.pd)
        self.pd_layers = [pd_view.get(i) for i in range(len(pd_view))]
        maps = family_of(ancestry) != "vit"
        anc_w = [o for _, o in self.anc_view.io_shapes()]
        pd_w = [o for _, o in pd_view.io_shapes()]
        self.weights = MatchingWeights(anc_w, len(pd_w)).to(self.device)
        self.adapters = Adapters(anc_w, pd_w, maps).to(self.device)
        self.train_cfg = train_config(cfg, cfg.pd_epochs, cfg.pd_lr, cfg.pd_batch_size)
        self.opt = make_optimizer([*self.pd.parameters(), *self.adapters.parameters()], self.train_cfg)
        meta = torch.optim.Adam if cfg.meta_optimizer == "adam" else torch.optim.SGD
        self.meta_opt = meta(self.weights.parameters(), lr=cfg.meta_lr)

    def _pd_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor):
        with _capture(self.pd_layers) as store:
            logits = functional_call(self.pd, params, (x,))
        return logits, [store[i] for i in range(len(self.pd_layers))]

    def step(self, x, y, x_next, y_next) -> dict[str, float]:
        """One bilevel iteration on batch (x, y) with look-ahead batch (x_next, y_next)."""
        with torch.no_grad():
            fa = self.anc_view.features(x)  # M × (B, ...)
        params = dict(self.pd.named_parameters())
        adapt = list(self.adapters.parameters())
        with sdpa_kernel(SDPBackend.MATH):  # fused attention kernels have no double backward
            logits, fp = self._pd_forward(params, x)
            w = self.weights(fa)  # (B, M, P)
            dist = self.adapters.distances(fa, fp, self.cfg.match_norm == "relative")  # (B, M, P)
            match = (w * dist).mean(0).sum() / (dist.shape[1] * dist.shape[2])  # mean over the M·P pairs
            ce = F.cross_entropy(logits, y)
            loss = ce + self.cfg.lam * match
            grads = torch.autograd.grad(loss, [*params.values(), *adapt], create_graph=True)
            theta_grads = grads[:len(params)]  # the adapters' gradients come after
            stepped = {k: p - self.cfg.inner_lr * g
                       for (k, p), g in zip(params.items(), theta_grads, strict=True)}
            meta_ce = F.cross_entropy(functional_call(self.pd, stepped, (x_next,)), y_next)
            meta_grads = torch.autograd.grad(meta_ce, list(self.weights.parameters()))
        for p, g in zip(self.weights.parameters(), meta_grads, strict=True):
            p.grad = g
        self.meta_opt.step()
        for p, g in zip([*params.values(), *adapt], grads, strict=True):
            p.grad = g.detach()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.meta_opt.zero_grad(set_to_none=True)
        return {"ce": ce.item(), "match": match.item(), "meta_ce": meta_ce.item(), "w_mean": w.mean().item()}

    @torch.no_grad()
    def mean_weights(self, images: torch.Tensor, batch: int) -> np.ndarray:
        """Mean w_mn(x) over `images` (uint8): the (M, P) similarity matrix."""
        total, n = None, 0
        for i in range(0, len(images), batch):
            x = normalize(images[i:i + batch].to(self.device))
            w = self.weights(self.anc_view.features(x)).double().sum(0)  # (M, P)
            total = w if total is None else total + w
            n += len(x)
        return (total / n).cpu().numpy()


def auto_similarity(ancestry: nn.Module, data: OpenWorld, cfg: CondenseConfig,
                    reporter: Reporter | None = None) -> MethodOutput:
    """Auto-LG / L2T-ww matching weights (see the module docstring); rows × pseudo-descendant layers."""
    torch.manual_seed(cfg.seed)
    run = _AutoLG(ancestry, data, cfg)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    tx, ty = data.train_x.to(run.device), data.train_y.to(run.device)
    bs, n = cfg.pd_batch_size, len(tx)
    steps = max(1, n // bs)
    history = []
    for epoch in range(cfg.pd_epochs):
        order = torch.randperm(n, generator=gen).to(run.device)
        batches = [order[s * bs:(s + 1) * bs] for s in range(steps)]
        sums: dict[str, float] = {}
        for s, idx in enumerate(batches):
            lr = lr_at(run.train_cfg, (epoch + s / steps) / cfg.pd_epochs)
            for group in run.opt.param_groups:
                group["lr"] = lr
            nxt = batches[(s + 1) % steps]
            x, x2 = (augment_batch(normalize(tx[i]), gen, flip=cfg.flip) for i in (idx, nxt))
            for k, v in run.step(x, ty[idx], x2, ty[nxt]).items():
                sums[k] = sums.get(k, 0.0) + v / steps
            if reporter is not None and (s + 1) % 25 == 0:  # a sign of life inside long epochs
                reporter.set_message(f"Auto-LG epoch {epoch + 1}/{cfg.pd_epochs}, step {s + 1}/{steps}")
        if not math.isfinite(sums["ce"]):
            raise DivergedError("Auto-LG training diverged; lower --pd-lr or the meta/inner learning rates")
        history.append({"epoch": epoch + 1, **sums})
        _advance(reporter, {"phase": "auto", **history[-1]}, "Auto-LG meta-training")
    run.pd.eval()
    _, acc = evaluate(run.pd, data.test_x, data.test_y, device=run.device, amp=False)
    history[-1]["test_acc"] = acc
    probes = data.probes(cfg.images, cfg.seed)
    matrix = run.mean_weights(probes, cfg.probe_batch)
    _advance(reporter, {"phase": "auto_weights", "images": len(probes)}, "mean matching weights")
    return MethodOutput(
        matrix, list(layer_view(run.pd).names),
        settings={"images_used": len(probes), "pd_spec": run.pd.lg_spec.to_dict(),
                  "weight_init": "Linear weight 0, bias 1 (w starts at 1)"},
        extras={"pd_history": history, **pd_quality(acc, len(data.classes), len(data.test_y))},
    )
