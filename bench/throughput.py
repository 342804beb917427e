"""Training throughput: the project's `Trainer` against a plain PyTorch loop written here.

Both train the same model (same initial weights) on the same uint8 images resident on the device,
with the same batch size, optimiser (AdamW, lr 1e-3, wd 0.05) and precision (bf16 autocast on CUDA,
fp32 on the CPU). The plain loop is the reference: permute, slice, normalise, forward, cross-entropy,
backward, step; nothing else. The project's loop is `learngene.train.trainer.Trainer` with
augmentation off (the same work), and once more with its default flip/shift augmentation.
Each variant runs `--epochs` epochs of `--steps` steps; the first epoch is warm-up (and compilation)
and is not counted; img/s is the median over the other epochs and over `--repeats` interleaved
repeats (interleaving spreads the noise of a shared machine over all variants alike).

Defaults: on the CPU the default ancestry architecture `lg_vit_tiny` at batch 64; on CUDA the GPU
throughput anchor of docs/design.md, a ViT with width 192 and 12 blocks on 32x32 images (patch 4),
batch 1024.

    python -m bench.throughput --threads 1            # CPU, default model
    python -m bench.throughput --device cuda          # GPU anchor (eager and torch.compile)
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench._common import (
    add_common_args,
    command_line,
    finish,
    machine_info,
    md_table,
    median,
    run_cli,
    section,
    setup,
    sync,
    timed,
    write_csv,
)

GPU_ANCHOR = {"arch": "lg_vit_small", "overrides": {"embed_dim": 192, "depth": 12, "num_heads": 3}}
"""The GPU anchor (docs/design.md): ViT dim 192 x 12 blocks, 32x32, patch 4 (a plain bf16 loop on an H100:
~31k img/s eager, ~42k compiled)."""


def _parse_set(items: list[str]) -> dict[str, Any]:
    from learngene.cli._common import parse_overrides

    return parse_overrides(items)


def make_model(arch: str, overrides: dict[str, Any], num_classes: int, seed: int = 0) -> nn.Module:
    from learngene.models import create_model

    torch.manual_seed(seed)
    return create_model(arch, num_classes, img_size=32, **overrides)


def plain_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int, steps: int, epochs: int,
               amp: bool, compiled: bool) -> list[float]:
    """The reference loop; returns images/s of every epoch. `x` uint8 (N, 3, H, W) on the device."""
    device = x.device
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    forward = torch.compile(model) if compiled else model
    use_amp = amp and device.type == "cuda"
    rates = []
    for _ in range(epochs):
        with timed(device) as t:
            order = torch.randperm(len(x), device=device)
            for s in range(steps):
                idx = order[s * batch:(s + 1) * batch]
                xb = (x[idx].float() / 255.0 - 0.5) / 0.25  # (B, 3, H, W), the project's normalisation
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = forward(xb)
                loss = F.cross_entropy(logits.float(), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        rates.append(steps * batch / t["s"])
    return rates


def project_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch: int, epochs: int, amp: bool,
                 compiled: bool, augment: bool, device: torch.device) -> list[float]:
    """`learngene`'s Trainer on the same data; returns images/s of every epoch (its own epoch timer)."""
    from learngene.train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3, weight_decay=0.05, warmup_epochs=0,
                      augment=augment, amp=amp, compile=compiled, device=device.type, eval_every=epochs)  # no test set: no evaluation
    history = Trainer(model, cfg, x, y).run()
    return [rec["img_per_s"] for rec in history]


def variants(device: torch.device, compile_cpu: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, loop, options) of every measured variant."""
    compile_ok = device.type == "cuda" or compile_cpu
    out = [("plain loop, eager", "plain", {"compiled": False})]
    if compile_ok:
        out.append(("plain loop, torch.compile", "plain", {"compiled": True}))
    out.append(("project Trainer, eager", "project", {"compiled": False, "augment": False}))
    if compile_ok:
        out.append(("project Trainer, compile=True", "project", {"compiled": True, "augment": False}))
    out.append(("project Trainer + flip/shift augmentation", "project", {"compiled": False, "augment": True}))
    return out


def run_variant(kind: str, opts: dict[str, Any], init: nn.Module, x: torch.Tensor, y: torch.Tensor,
                args: argparse.Namespace, device: torch.device) -> tuple[list[float], float]:
    """Measured epochs' img/s (warm-up dropped) and peak GPU memory in GiB (NaN on the CPU)."""
    model = copy.deepcopy(init).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if kind == "plain":
        rates = plain_loop(model, x, y, batch=args.batch, steps=args.steps, epochs=args.epochs, amp=not args.no_amp,
                           compiled=opts["compiled"])
    else:
        rates = project_loop(model, x, y, batch=args.batch, epochs=args.epochs, amp=not args.no_amp,
                             compiled=opts["compiled"], augment=opts["augment"], device=device)
    sync(device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return rates[1:], peak


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default=None, help="model (default: lg_vit_tiny on CPU, the GPU anchor on CUDA)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture override, e.g. --set depth=12 (repeatable)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: 64 on CPU, 1024 on CUDA)")
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (default: 10 on CPU, 30 on CUDA)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per variant, the first is warm-up (default: 3)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default: 2 on CPU, 1 on CUDA)")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    p.add_argument("--compile-cpu", action="store_true", help="measure torch.compile on the CPU as well")
    add_common_args(p, "throughput")
    return p.parse_args(argv)


def resolve_defaults(args: argparse.Namespace, device: torch.device) -> None:
    gpu = device.type == "cuda"
    if args.arch is None:
        args.arch = GPU_ANCHOR["arch"] if gpu else "lg_vit_tiny"
        if gpu and not args.overrides:
            args.overrides = [f"{k}={v}" for k, v in GPU_ANCHOR["overrides"].items()]
    quick = args.quick
    args.batch = args.batch or ((256 if quick else 1024) if gpu else (16 if quick else 64))
    args.steps = args.steps or ((5 if quick else 30) if gpu else (3 if quick else 10))
    args.epochs = args.epochs or (2 if quick else 3)
    args.repeats = args.repeats or (1 if (quick or gpu) else 2)
    if quick and not args.overrides and not gpu:
        args.overrides = ["depth=2"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args)
    resolve_defaults(args, device)
    overrides = _parse_set(args.overrides)
    init = make_model(args.arch, overrides, num_classes=10)
    n = args.batch * args.steps
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    params = sum(p.numel() for p in init.parameters())
    precision = "bf16 autocast" if device.type == "cuda" and not args.no_amp else "fp32"
    print(f"{args.arch} {overrides} ({params / 1e6:.2f}M params), batch {args.batch}, {args.steps} steps/epoch, "
          f"{args.epochs} epochs (first = warm-up) x {args.repeats} repeat(s), {precision}, device {device}")
    found: dict[str, list[float]] = {}
    peaks: dict[str, float] = {}
    plan = variants(device, args.compile_cpu)
    for r in range(args.repeats):
        for name, kind, opts in plan:
            rates, peak = run_variant(kind, opts, init, x, y, args, device)
            found.setdefault(name, []).extend(rates)
            peaks[name] = peak
            print(f"  repeat {r + 1}: {name:<44} {median(rates):>10.0f} img/s")
    best_plain = max(median(found[n]) for n, k, _ in plan if k == "plain")
    rows, csv_rows = [], []
    for name, kind, opts in plan:
        rate = median(found[name])
        rows.append([name, f"{rate:,.0f}", f"{rate / best_plain:.2f}",
                     "" if peaks[name] != peaks[name] else f"{peaks[name]:.2f}"])
        csv_rows.append({"variant": name, "loop": kind, **opts, "img_per_s": rate, "ratio_to_best_plain": rate / best_plain,
                         "epoch_rates": " ".join(f"{v:.1f}" for v in found[name]), "peak_gpu_gib": peaks[name],
                         "arch": args.arch, "overrides": str(overrides), "batch": args.batch, "steps": args.steps,
                         "precision": precision, "device": str(device)})
    table = md_table(["loop", "img/s", "÷ best plain", "peak GPU GiB"], rows)
    info = machine_info(device)
    print("\n" + table)
    write_csv(f"{args.out}/throughput-{device.type}.csv", [{**r, **info} for r in csv_rows])
    project_best = max(median(found[n]) for n, k, o in plan if k == "project" and not o["augment"])
    body = (f"Model `{args.arch}`{' ' + str(overrides) if overrides else ''} ({params / 1e6:.2f}M parameters), batch {args.batch}, {precision}, "
            f"data resident on the device, {args.steps} steps per epoch, first epoch of each run not counted, median "
            f"over {args.epochs - 1} epoch(s) x {args.repeats} repeat(s).\n\n{table}\n\n"
            f"Best project loop without augmentation / best plain loop: **{project_best / best_plain:.2f}**.")
    key = f"throughput-{device.type}"
    finish(args, key, section(key, f"Training throughput ({device.type})", body, command_line("bench.throughput", argv),
                              info))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
