"""Ray speed: the same tiny sweep trained locally (one after another) and as Ray tasks, side by side.

One run of this benchmark times, on the same grid, with one torch thread per training in both:
* **local**: `run_sweep` in this process, pair after pair (the default backend);
* **ray xW, cold**: a local Ray with W CPUs started for the sweep (`RayBackend`, the start-up timed on
  its own), then `run_sweep(..., backend=...)`: every pair is a Ray task on one CPU, its worker process
  started on first use (torch and the library imported there);
* **ray xW, warm**: the same sweep again on that Ray, its worker processes already up: what each further
  sweep of a long study costs.
Agreement: the pairs must be the same runs (first-epoch training loss to 1e-4 relative, final accuracy).

The sweep: a random-init lg_vit_tiny ancestry (as `bench.sweep_speed`), 6-block descendants that inherit
its last 3 blocks; `--tasks` 5-way tasks x `--lrs` x `--seeds` at K = `--shots`, each pair = descendant +
baseline. From the measured times the section estimates how the four-advantage study's wall time scales
with workers (see `scaling`).

    python -m bench.ray_speed --threads 1 --write-docs
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import replace
from typing import Any

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

STUDY_RUNS, STUDY_TRAINING_MIN = 1320, 263  # the four-advantage study on one machine (docs/results.md)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ray_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="2", help="Ray CPUs to compare, comma-separated (default: 2 = this machine)")
    p.add_argument("--tasks", type=int, default=None, help="5-way tasks (default: 2; --quick: 1)")
    p.add_argument("--lrs", default="1e-3,3e-3", help="learning rates of the grid (default: 1e-3,3e-3)")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default: 2; --quick: 1)")
    p.add_argument("--shots", type=int, default=5, help="K (default: 5 -> 25 training images)")
    p.add_argument("--epochs", type=int, default=None, help="(default: 10; --quick: 2)")
    p.add_argument("--test-per-class", type=int, default=None, help="(default: 20; --quick: 5)")
    add_common_args(p, "ray_speed")
    args = p.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    if any(w < 1 for w in args.workers):
        p.error("--workers must be positive")
    args.tasks = args.tasks or (1 if args.quick else 2)
    args.seeds = args.seeds or (1 if args.quick else 2)
    args.epochs = args.epochs or (2 if args.quick else 10)
    args.test_per_class = args.test_per_class or (5 if args.quick else 20)
    args.lrs = [float(v) for v in args.lrs.split(",")]
    # what bench.sweep_speed.source_and_recipe reads
    args.ancestry, args.preset, args.placement, args.depth = None, "heur", "top", None
    return args


def sweep_settings(args: argparse.Namespace, device) -> tuple[Any, Any]:
    from learngene.descend.sweep import SweepConfig
    from learngene.train.config import TrainConfig

    sweep = SweepConfig(lrs=args.lrs, wds=[0.05], shots=[args.shots], seeds=list(range(args.seeds)),
                        tasks=args.tasks, test_per_class=args.test_per_class, batched="off")
    cfg = TrainConfig(epochs=args.epochs, batch_size=10, lr=args.lrs[0], weight_decay=0.05, warmup_epochs=0,
                      eval_every=1, device=device.type)
    return sweep, cfg


def agreement(ref: list, got: list) -> dict[str, float]:
    """Largest first-epoch train-loss (relative) and final-accuracy differences, pair by pair, role by role."""
    d_loss, d_acc = [0.0], [0.0]
    for p, q in zip(ref, got, strict=True):
        for role in ("learngene", "baseline"):
            a, b = p.run(role), q.run(role)
            la, lb = a.history[0]["train_loss"], b.history[0]["train_loss"]
            d_loss.append(abs(la - lb) / max(abs(la), 1e-12))
            d_acc.append(abs(a.final_acc(p.n_way) - b.final_acc(q.n_way)))
    return {"loss_rel_diff_max": max(d_loss), "final_acc_diff_max": max(d_acc)}


def train_seconds(pairs: list) -> float:
    """Seconds the runs themselves took (each model's `train_one`, evaluation included), summed."""
    return sum(p.learngene.wall_time + p.baseline.wall_time for p in pairs)


def scaling(local: dict[str, float], ray: dict[str, float], workers: int, pairs: int, load: float | None
            ) -> tuple[str, dict[str, float]]:
    """A paragraph on how the study's wall time scales with workers, from this run's measurements.

    `local` / `ray` hold the sweep's wall seconds ("wall") and the seconds its runs took, summed
    ("train"). On Ray, train / wall is how many runs trained at once; train(ray) / train(local) is how much
    slower each run was beside the others (cores shared); wall x W - train is what Ray itself cost (worker
    time not spent in a run: shipping models and task images, scheduling, results), per task. With runs as
    fast as alone, N workers would train with efficiency e = run / (run + Ray's cost per task)."""
    concurrency = ray["train"] / ray["wall"]
    slowdown = ray["train"] / local["train"]
    overhead = max(0.0, (ray["wall"] * workers - ray["train"]) / pairs)
    run_s = local["train"] / pairs
    eff = run_s / (run_s + overhead)
    est = {n: STUDY_TRAINING_MIN / (n * eff) for n in (4, 8, 16, 32)}
    loaded = f"load average {load:.1f} on {os.cpu_count()} cores when it ran" if load is not None else ""
    shared = (f"but each pair took {slowdown:.2f}x as long as alone: the machine's other processes ({loaded}) left "
              f"the workers less than {workers} free cores, so here the speed-up is bounded by free cores, not by "
              f"Ray" if slowdown > 1.15 else
              f"and each pair took about as long as alone ({slowdown:.2f}x{'; ' + loaded if loaded else ''})")
    text = (f"**How a study's wall time scales with workers.** With {workers} Ray workers the sweep ran "
            f"{local['wall'] / ray['wall']:.2f}x as fast as in one process. Ray ran {concurrency:.1f} "
            f"pairs at once on average, {shared}. Ray's own cost, the worker time not spent in a run, was "
            f"{overhead:.2f} s per task against {run_s:.2f} s for a pair alone. With runs as fast as alone "
            f"(workers on cores of their own, as on a larger machine or a cluster), N workers would train at an "
            f"efficiency of about {eff:.0%}, so the four-advantage study, {STUDY_RUNS} independent runs and "
            f"{STUDY_TRAINING_MIN} min of training one after another on one machine, would take about "
            f"{STUDY_TRAINING_MIN} / (N x {eff:.2f}) min: "
            + ", ".join(f"{n} workers ~{m:.0f} min" for n, m in est.items())
            + ", plus the Ray start-up once. The study's runs are far longer than this benchmark's pairs "
            "(40 epochs, up to 100 images), so Ray's per-task cost weighs less there; the limit is the run "
            "count per ancestry and the slowest run: once there are about as many workers as runs left, more "
            "workers do not help.")
    return text, {"concurrency": concurrency, "run_slowdown": slowdown, "ray_cost_per_task_s": overhead,
                  "efficiency_free_cores": eff, **{f"study_min_{n}_workers": m for n, m in est.items()}}


def _on_ray(w: int, args: argparse.Namespace, device: Any, job: tuple, local: Any, local_s: float,
            rows: list[list[Any]], csv_rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, float]], bool]:
    """The sweep on a local Ray of `w` CPUs, cold then warm, each checked against the local runs; appends the
    table and CSV rows. Returns the timings per kind and whether every run agreed with its local twin."""
    from learngene.cluster.backend import RayBackend
    from learngene.descend.sweep import run_sweep

    recipe, ancestry, ds, sweep, cfg = job
    with timed(device) as t_start:
        backend = RayBackend(None, num_cpus=1, local_cpus=w, log=print).__enter__()
    ok, startup, timings = True, t_start["s"], {}
    try:
        for kind in ("cold", "warm"):
            with timed(device) as t:
                got = run_sweep(recipe, ancestry, ds, sweep, cfg, backend=backend)
            timings[kind] = {"wall": t["s"], "train": train_seconds(got)}
            agree = agreement(local, got)
            same = agree["loss_rel_diff_max"] < 1e-4
            ok &= same
            rows.append([f"ray x{w}, {kind} workers", w, f"{startup:.1f}" if kind == "cold" else "-",
                         f"{t['s']:.1f}", f"{timings[kind]['train']:.1f}", f"{local_s / t['s']:.2f}x",
                         f"{agree['loss_rel_diff_max']:.1e}", f"{100 * agree['final_acc_diff_max']:.1f}"])
            csv_rows.append({"backend": "ray", "workers": w, "kind": kind, "startup_s": startup,
                             "seconds": t["s"], "train_seconds": timings[kind]["train"],
                             "speedup": local_s / t["s"], **agree, "agree": same})
            print(f"ray x{w} ({kind} workers): {t['s']:.1f} s (+{startup:.1f} s start-up), "
                  f"{local_s / t['s']:.2f}x; {agree}")
    finally:
        backend.__exit__(None, None, None)
    return timings, ok


def main(argv: list[str] | None = None) -> int:
    from bench.sweep_speed import source_and_recipe
    from learngene.data import load_dataset
    from learngene.descend.sweep import run_sweep

    args = parse_args(argv)
    device = setup(args)
    ancestry, recipe, what = source_and_recipe(args)
    ds = load_dataset("shapes", images_per_class=max(args.shots + args.test_per_class, 40))
    sweep, cfg = sweep_settings(args, device)
    pairs = sweep.runs
    print(f"{what}\n{pairs} pairs ({2 * pairs} trainings): {args.tasks} task(s) x {len(args.lrs)} lr x {args.seeds} "
          f"seed(s), {args.shots}-shot 5-way, {args.epochs} epochs, batch 10")
    run_sweep(recipe, ancestry, ds, replace(sweep, tasks=1, seeds=[0], lrs=args.lrs[:1]), replace(cfg, epochs=1))
    with timed(device) as t:
        local = run_sweep(recipe, ancestry, ds, sweep, cfg)
    local_s = t["s"]
    local_times = {"wall": local_s, "train": train_seconds(local)}
    print(f"local, one after another: {local_s:.1f} s")
    rows = [["local (one after another)", 1, "-", f"{local_s:.1f}", f"{local_times['train']:.1f}", "1.00x", "-", "-"]]
    csv_rows = [{"backend": "local", "workers": 1, "startup_s": 0.0, "seconds": local_s,
                 "train_seconds": local_times["train"], "speedup": 1.0}]
    ok, paragraph = True, ""
    for w in args.workers:
        timings, same = _on_ray(w, args, device, (recipe, ancestry, ds, sweep, cfg), local, local_s, rows, csv_rows)
        ok &= same
        if w == max(args.workers):
            paragraph, est = scaling(local_times, timings["warm"], w, pairs, machine_info(device).get("load_avg_1m"))
            csv_rows[-1].update(est)
    headers = ["backend", "CPUs", "Ray start-up s", "sweep s", "runs' own s (sum)", "speed-up vs local",
               "1st-epoch loss rel. diff", "final acc diff (max, points)"]
    table = md_table(headers, rows)
    print("\n" + table + "\n\n" + paragraph)
    info = machine_info(device)
    write_csv(f"{args.out}/ray-{device.type}.csv", [{**r, **info, "pairs": pairs, "epochs": args.epochs}
                                                    for r in csv_rows])
    body = (f"{what}. The same sweep, {pairs} pairs ({2 * pairs} trainings: {args.tasks} 5-way task(s) x "
            f"{len(args.lrs)} lr x {args.seeds} seed(s), K={args.shots}, {args.epochs} epochs at batch 10, evaluated "
            f"every epoch on {args.test_per_class} images per class), trained in one run of the benchmark: locally "
            f"pair after pair, then as Ray tasks (one CPU and one torch thread each) on a local Ray started for it "
            f"(*cold*: worker processes start with the first tasks; *warm*: the same sweep again on that Ray). "
            f"Speed-up = local seconds / Ray seconds, start-up not included (it is paid once per job). *runs' own "
            f"s*: the wall seconds of every training (evaluation included) summed, as each run measured itself. "
            f"The differences are between each Ray pair and its local twin (same seeds): the runs are the same."
            f"\n\n"
            f"{table}\n\n{paragraph}")
    key = f"ray-{device.type}"
    finish(args, key, section(key, f"Ray: the same sweep locally and on {max(args.workers)} Ray workers "
                                   f"({device.type})", body, command_line("bench.ray_speed", argv), info))
    return 0 if ok and all(math.isfinite(r["seconds"]) for r in csv_rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(run_cli(main))
