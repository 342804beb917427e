"""The real-size path at 224 px: time per training step, and each command's wall time and peak memory.

For each architecture (default timm's `deit_tiny_patch16_224` and `resnet18`, random weights: no
download), on a small image folder made here (shapes images rendered at 256 px, decoded straight to
224 px), the whole path runs as the user would type it, one process per command:

    accumulate --img-size 224  ->  condense --method cka  ->  inherit  ->  train --learngene

Time per step is read from the commands' own epoch records (`metrics.jsonl` in their run folders): the
epoch's training time divided by its steps, median over the epochs after the first (the first holds
one-off set-up); for `train`, over the learngene descendant's and the baseline's epochs. Peak memory
is `ru_maxrss` from `wait4` of each command.

    python -m bench.real_size --threads 1 --write-docs
    python -m bench.real_size --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import (
    ROOT,
    add_common_args,
    command_line,
    finish,
    machine_info,
    md_table,
    median,
    run_cli,
    section,
    setup,
    write_csv,
)

ARCHS = ("deit_tiny_patch16_224", "resnet18")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.real_size", description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default=",".join(ARCHS), help="timm architectures (default: %(default)s)")
    p.add_argument("--img-size", type=int, default=224, help="(default: %(default)s)")
    p.add_argument("--native", type=int, default=256, help="side of the folder's image files (default: %(default)s)")
    p.add_argument("--classes", type=int, default=10, help="classes in the folder (default: %(default)s)")
    p.add_argument("--per-class", type=int, default=None, help="images per class (default: 12; --quick 4)")
    p.add_argument("--batch-size", type=int, default=None, help="accumulate's batch (default: 32; --quick 8)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of accumulate and train (default: 3; --quick 2)")
    add_common_args(p, "real_size")
    args = p.parse_args(argv)
    args.per_class = args.per_class or (4 if args.quick else 12)
    args.batch_size = args.batch_size or (8 if args.quick else 32)
    args.epochs = args.epochs or (2 if args.quick else 3)
    return args


def make_folder(root: Path, classes: int, per_class: int, native: int) -> Path:
    """`classes` x `per_class` shapes images rendered at `native` px, written as PNG files."""
    import torch
    from PIL import Image

    from learngene.data.shapes import class_names, render_batch

    names = class_names()
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = render_batch(labels, native, torch.Generator().manual_seed(0))
    for k, c in enumerate(labels.tolist()):
        sub = root / names[c]
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[k].permute(1, 2, 0).numpy()).save(sub / f"{k % per_class:03d}.png")
    return root


def run_command(argv: list[str], args: argparse.Namespace, env: dict[str, str], log: Path) -> dict[str, Any]:
    """One `python -m learngene ...` process: wall seconds and peak RSS (wait4); raises on failure."""
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n$ {shlex.join(argv)}\n")
        f.flush()
        proc = subprocess.Popen([sys.executable, "-m", "learngene", *argv], cwd=ROOT, env=env, stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"`learngene {argv[0]}` failed with exit code {code}: {' / '.join(tail)}")
    return {"seconds": time.perf_counter() - t0, "peak_mib": usage.ru_maxrss / 1024,
            "command": shlex.join(["python", "-m", "learngene", *argv])}


def step_times(run_dir: Path, batch: int) -> dict[str, Any]:
    """Seconds per step from a run folder's epoch records: each epoch's time over its steps, median over
    the epochs after each model's first."""
    per_step: list[float] = []
    seen: dict[str, int] = {}
    last_step: dict[str, int] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") != "epoch" or "epoch_time" not in rec:
            continue
        model = f"{rec.get('model', '')}-{rec.get('task', '')}"
        steps = rec["step"] - last_step.get(model, 0)
        last_step[model] = rec["step"]
        seen[model] = seen.get(model, 0) + 1
        if seen[model] > 1 and steps > 0:
            per_step.append(rec["epoch_time"] / steps)
    s = median(per_step)
    return {"s_per_step": s, "img_per_s": batch / s if s == s and s > 0 else float("nan"), "n": len(per_step)}


def measure_arch(arch: str, args: argparse.Namespace, folder: Path, tmp: Path, device: str) -> dict[str, Any]:
    out = tmp / arch
    out.mkdir()
    env = dict(os.environ, LEARNGENE_CACHE=str(tmp / "cache"))
    env.pop("LEARNGENE_RUN_DIR", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    threads = ["--threads", str(args.threads)] if args.threads else []
    log = tmp / "commands.log"
    anc, sim, lg = out / "ancestry.safetensors", out / "sim.json", out / "lg.safetensors"
    holdout = max(1, args.per_class // 6)
    n_way, k_shot = 2, max(1, min(10, args.per_class - 2))
    train_batch = n_way * k_shot // 2 or 1
    cmds = {
        "accumulate": ["accumulate", "--arch", arch, "--dataset", f"folder:{folder}", "--img-size", str(args.img_size),
                       "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--warmup-epochs", "0",
                       "--holdout-per-class", str(holdout), "--device", device, *threads,
                       "--run-dir", str(out / "accumulate"), "--out", str(anc)],
        "condense": ["condense", "--ancestry", str(anc), "--method", "cka", "--images", str(min(32, args.per_class * 2)),
                     "--pd-epochs", "1", "--set", f"holdout_per_class={holdout}", "--device", device,
                     "--out", str(sim)],
        "inherit": ["inherit", "--ancestry", str(anc), "--similarity", str(sim), "--out", str(lg)],
        "train": ["train", "--learngene", str(lg), "--n-way", str(n_way), "--k-shot", str(k_shot), "--epochs",
                  str(args.epochs), "--batch-size", str(train_batch), "--test-per-class", "2", "--device", device,
                  *threads, "--run-dir", str(out / "train")],
    }
    row: dict[str, Any] = {"arch": arch}
    for name, argv in cmds.items():
        res = run_command(argv, args, env, log)
        row[f"{name}_s"], row[f"{name}_peak_mib"], row[f"{name}_command"] = (res["seconds"], res["peak_mib"],
                                                                            res["command"])
        print(f"{arch} {name}: {res['seconds']:.1f} s, peak {res['peak_mib']:.0f} MiB")
    acc = step_times(out / "accumulate", args.batch_size)
    tr = step_times(out / "train", train_batch)
    row.update(accumulate_s_per_step=acc["s_per_step"], accumulate_img_per_s=acc["img_per_s"],
               accumulate_batch=args.batch_size, train_s_per_step=tr["s_per_step"], train_img_per_s=tr["img_per_s"],
               train_batch=train_batch, n_way=n_way, k_shot=k_shot)
    from learngene.models import load_checkpoint

    model, card = load_checkpoint(anc)
    row["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    row["img_size"] = card.spec.img_size
    return row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-real-size-") as d:
        tmp = Path(d)
        folder = make_folder(tmp / "imgs", args.classes, args.per_class, args.native)
        for arch in [a.strip() for a in args.archs.split(",") if a.strip()]:
            rows.append(measure_arch(arch, args, folder, tmp, device.type))
    table = md_table(
        ["architecture", "parameters", "px", "accumulate s/step", "img/s", "train s/step", "img/s",
         "accumulate s", "condense s", "inherit s", "train s", "peak RSS MiB (max of the four)"],
        [[r["arch"], f"{r['params_m']:.1f} M", r["img_size"],
          f"{r['accumulate_s_per_step']:.2f} (batch {r['accumulate_batch']})", f"{r['accumulate_img_per_s']:.1f}",
          f"{r['train_s_per_step']:.2f} (batch {r['train_batch']})", f"{r['train_img_per_s']:.1f}",
          f"{r['accumulate_s']:.1f}", f"{r['condense_s']:.1f}", f"{r['inherit_s']:.1f}", f"{r['train_s']:.1f}",
          f"{max(r[f'{c}_peak_mib'] for c in ('accumulate', 'condense', 'inherit', 'train')):.0f}"]
         for r in rows])
    print("\n" + table)
    info = machine_info(device)
    write_csv(f"{args.out}/real_size-{device.type}.csv", [{**r, **info} for r in rows])
    cmds = "\n".join(f"- {r['arch']} {c}: `{r[f'{c}_command']}`" for r in rows
                     for c in ("accumulate", "condense", "inherit", "train"))
    body = (f"timm architectures with random weights at {args.img_size} px, on a folder of {args.classes} classes x "
            f"{args.per_class} shapes images rendered at {args.native} px (decoded straight to {args.img_size} px); "
            f"{args.epochs} epochs of accumulate and of train ({rows[0]['n_way'] if rows else 2}-way "
            f"{rows[0]['k_shot'] if rows else ''}-shot, descendant and baseline). *s/step*: an epoch's training time "
            "over its steps (forward, backward, optimiser step, augmentation and data feeding), median over the "
            "epochs after the first; accumulate's at its batch, train's at the few-shot batch. *s*: each command's "
            "wall time, process start and imports included. Peak RSS from `wait4`.\n\n"
            f"{table}\n\nCommands (temporary paths):\n{cmds}")
    key = f"real-size-{device.type}"
    finish(args, key, section(key, f"The real-size path at {args.img_size} px ({device.type})", body,
                              command_line("bench.real_size", argv), info))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
