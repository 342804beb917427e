"""Similarity speed: the full ancestry x pseudo-descendant linear-CKA matrix, project vs naive.

The project's path is `learngene.condense.methods.cka_between` (what the `cka` condensing method
runs): one forward pass of each model per minibatch, every layer's Gram matrix U-centred once, and
one matrix product for all (ancestry layer, pseudo-descendant layer) pairs (`MinibatchCKA`).

The naive reference, written here: the same forward passes and token pooling, then a loop over every
pair (m, n) and every minibatch that builds both Gram matrices afresh and evaluates the unbiased HSIC
with the explicit formula of Song et al. (2012),
    HSIC_1 = [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),
(K~, L~: Gram matrices with zeroed diagonals) for (K, L), (K, K) and (L, L). Both in float64. The
matrices must agree to 1e-8. Reported: end to end (forward passes included, as `condense` pays them)
and the similarity math alone (both implementations on the same precomputed features).

Default: a 12-block `lg_vit_tiny` (random init; weights do not change the cost) against its
6-block pseudo-descendant, on 2,048 open-world `shapes` images in minibatches of 256, class-token-free
mean of the patch tokens (the `condense` default).

    python -m bench.cka_speed --threads 1
    python -m bench.cka_speed --device cuda
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from bench._common import (
    add_common_args,
    command_line,
    finish,
    machine_info,
    md_table,
    run_cli,
    section,
    setup,
    timed,
    write_csv,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.cka_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--ancestry", default=None, help="ancestry checkpoint (default: random-init lg_vit_tiny, --depth blocks)")
    p.add_argument("--depth", type=int, default=None, help="blocks of the default ancestry (default: 12)")
    p.add_argument("--images", type=int, default=None, help="probe images (default: 2048)")
    p.add_argument("--batch", type=int, default=256, help="CKA minibatch (default: 256)")
    p.add_argument("--tokens", choices=["mean", "cls", "flatten"], default="mean", help="ViT token treatment")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats of each, best kept (default: 3)")
    add_common_args(p, "cka_speed")
    args = p.parse_args(argv)
    args.depth = args.depth or (4 if args.quick else 12)
    args.images = args.images or (128 if args.quick else 2048)
    args.batch = min(args.batch, 64) if args.quick else args.batch
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def models(args: argparse.Namespace, device: torch.device) -> tuple[Any, Any, str]:
    """(ancestry, pseudo-descendant, description), both in eval mode on `device`."""
    from learngene.condense.pseudo import pseudo_descendant_spec
    from learngene.inherit.choose import load_ancestry
    from learngene.models import create_from_spec, create_model

    if args.ancestry:
        anc, _card, path = load_ancestry(args.ancestry)
        what = str(path)
    else:
        torch.manual_seed(0)
        anc = create_model("lg_vit_tiny", 64, depth=args.depth)
        what = f"random-init lg_vit_tiny with {args.depth} blocks"
    torch.manual_seed(1)
    pd = create_from_spec(pseudo_descendant_spec(anc, 16))
    return anc.eval().to(device), pd.eval().to(device), what


def _pool(f: torch.Tensor, tokens: str, prefix: int) -> torch.Tensor:
    """A layer's output as (B, d) float64: ViT tokens pooled as the project does; CNN maps flattened."""
    if f.ndim == 3:
        f = f[:, 0] if tokens == "cls" else (f[:, prefix:].mean(1) if tokens == "mean" else f.flatten(1))
    return f.flatten(1).double()


def _hsic_naive(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741
    """Unbiased HSIC_1 by the explicit formula of Song et al. (2012); k, l: (n, n) Gram matrices."""
    n = k.shape[0]
    kt = k - torch.diag(torch.diag(k))
    lt = l - torch.diag(torch.diag(l))
    trace = (kt * lt.T).sum()  # tr(K~ L~)
    middle = kt.sum() * lt.sum() / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * (kt.sum(0) @ lt.sum(1))  # 1'K~L~1
    return (trace + middle - last) / (n * (n - 3))


@torch.no_grad()
def features(anc, pd, images: torch.Tensor, batch: int, tokens: str, device: torch.device) -> list[tuple[list, list]]:
    """Pooled float64 features of every layer of both models, per minibatch of >= 4 images."""
    from learngene.data import normalize
    from learngene.models import layer_view

    views = [layer_view(anc), layer_view(pd)]
    prefix = [int(getattr(m, "num_prefix_tokens", 0)) for m in (anc, pd)]
    feats = []
    for b in range(0, len(images), batch):
        x = normalize(images[b:b + batch].to(device))
        if len(x) >= 4:
            fa, fb = ([_pool(f, tokens, pre) for f in view.features(x)] for view, pre in zip(views, prefix, strict=True))
            feats.append((fa, fb))
    return feats


@torch.no_grad()
def naive_cka(feats: list[tuple[list, list]]) -> torch.Tensor:
    """The reference: every (row layer, column layer) pair and every minibatch on its own."""
    rows, cols = len(feats[0][0]), len(feats[0][1])
    out = torch.zeros(rows, cols, dtype=torch.float64)
    for m in range(rows):
        for n in range(cols):
            kl = kk = ll = 0.0
            for fa, fb in feats:
                k = fa[m] @ fa[m].T  # (B, B)
                l = fb[n] @ fb[n].T  # noqa: E741
                kl = kl + _hsic_naive(k, l)
                kk = kk + _hsic_naive(k, k)
                ll = ll + _hsic_naive(l, l)
            out[m, n] = float(kl / math.sqrt(float(kk) * float(ll)))
    return out


def project_cka(feats: list[tuple[list, list]]) -> torch.Tensor:
    """The library's vectorised accumulator (`MinibatchCKA`, used by `cka_between`) on given features."""
    from learngene.condense.cka import MinibatchCKA

    acc = MinibatchCKA()
    for fa, fb in feats:
        acc.update(fa, fb)
    return acc.value()


def measure(anc, pd, images, args, device) -> tuple[dict[str, list[float]], dict[str, torch.Tensor]]:
    """Timings of every part, `args.repeats` times: the project end to end, the shared forward passes, and the
    similarity math of each implementation on the same features."""
    from learngene.condense.methods import cka_between

    times: dict[str, list[float]] = {"project_total": [], "forward": [], "project_sim": [], "naive_sim": []}
    results: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        with timed(device) as t:
            results["project_total"] = cka_between(anc, pd, images, batch=args.batch, tokens=args.tokens,
                                                   device=device)
        times["project_total"].append(t["s"])
        with timed(device) as t:
            feats = features(anc, pd, images, args.batch, args.tokens, device)
        times["forward"].append(t["s"])
        with timed(device) as t:
            results["project_sim"] = project_cka(feats)
        times["project_sim"].append(t["s"])
        with timed(device) as t:
            results["naive_sim"] = naive_cka(feats)
        times["naive_sim"].append(t["s"])
        print("  " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()))
    return times, results


def main(argv: list[str] | None = None) -> int:
    from learngene.data import load_dataset

    args = parse_args(argv)
    device = setup(args)
    anc, pd, what = models(args, device)
    n_open = 16
    ds = load_dataset("shapes", images_per_class=max(40, -(-args.images // n_open)))
    open_idx = ds.indices_of(ds.split.classes("open"))
    images = ds.images[open_idx[:args.images]]
    print(f"{what} x pseudo-descendant; {len(images)} images, minibatch {args.batch}, tokens {args.tokens}, {device}")
    times, results = measure(anc, pd, images, args, device)
    diff = max(float((results[k] - results["naive_sim"]).abs().max()) for k in ("project_total", "project_sim"))
    best = {k: min(v) for k, v in times.items()}
    naive_total = best["forward"] + best["naive_sim"]
    shape = tuple(results["project_total"].shape)
    ok = diff < 1e-8
    table = md_table(
        ["implementation", f"end to end s (best of {args.repeats})", "÷ project", "similarity math s", "÷ project"],
        [["project (`cka_between` / `MinibatchCKA`, vectorised)", f"{best['project_total']:.3f}", "1.00",
          f"{best['project_sim']:.4f}", "1.00"],
         ["naive per-pair loop (in the benchmark)", f"{naive_total:.3f}", f"{naive_total / best['project_total']:.1f}",
          f"{best['naive_sim']:.4f}", f"{best['naive_sim'] / best['project_sim']:.1f}"]])
    print(f"\n{table}\nmatrix {shape}, max |project - naive| = {diff:.1e} ({'agree' if ok else 'DISAGREE'})")
    info = machine_info(device)
    write_csv(f"{args.out}/cka-{device.type}.csv", [{
        "part": k, "seconds_best": best[k], "seconds_all": " ".join(f"{v:.4f}" for v in times[k]),
        "matrix": f"{shape[0]}x{shape[1]}", "images": len(images), "batch": args.batch, "tokens": args.tokens,
        "max_abs_diff": diff, "model": what, **info} for k in times])
    body = (f"{what} against its pseudo-descendant ({shape[0]} x {shape[1]} matrix), {len(images)} open-world "
            f"images in minibatches of {args.batch}, tokens `{args.tokens}`, float64. *End to end* includes the "
            f"forward passes of both models ({best['forward']:.3f} s, the same for both: the naive end to end is "
            f"that plus its similarity math); *similarity math* is the Gram / HSIC work on the same precomputed "
            f"features.\n\n{table}\n\nSpeed-up **{naive_total / best['project_total']:.1f}x** end to end, "
            f"**{best['naive_sim'] / best['project_sim']:.1f}x** on the similarity math; largest difference between "
            f"the matrices {diff:.1e} ({'agree' if ok else 'DISAGREE'}).")
    key = f"cka-{device.type}"
    finish(args, key, section(key, f"Similarity speed: CKA matrix ({device.type})", body,
                              command_line("bench.cka_speed", argv), info))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
