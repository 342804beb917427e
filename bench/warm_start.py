"""Warm start: click to first point, jobs forked by the fork server against cold `python -m learngene`.

Each job is started the way the app starts it (the same argv builders, `JobManager.start` = the click),
once through a manager with warm start (its runs folder's fork server loaded beforehand, as the app's
launcher does) and once cold, alternating which goes first, and timed from the click to its data:

- train: the Train page's default learngene-vs-baseline run: the first epoch record of each model (the
  baseline trains after the learngene descendant's epochs of the first task today);
- condense: the Similarity page's CKA condense recomputed with other settings (CKA of layer updates),
  its pseudo-descendant cached by an untimed first run: to `outputs/similarity.json`;
- probe: the Similarity page's probe of the ancestry's layers (the shipped CKA layers as the chosen set):
  to its first trained model;
- demo: the Home page's demo: to its first curve point and to its headline (`outputs/summary.json`).

The train and probe jobs are cancelled once their first points are in. Ratios are cold / warm of the same
round; the load average says how busy the machine was.

    python -m bench.warm_start --write-docs
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import (
    add_common_args,
    command_line,
    finish,
    kill_processes_naming,
    machine_info,
    md_table,
    run_cli,
    section,
    write_csv,
)
from learngene.runlog import read_json

# The Train page's defaults (app/ui/forms.py TASK_DEFAULTS, not imported: it needs Streamlit).
TRAIN_TASK = {"n_way": 5, "k_shot": 10, "tasks": 2, "epochs": 40, "optimizer": "adamw", "lr": 1e-3,
              "weight_decay": 0.05, "batch_size": 10, "seed": 0, "device": "cpu", "target_acc": 0.6}
RECIPE = {"placement": "original", "stem": "inherit"}
PROBE_TASKS = 10  # the Similarity page's default
GOALS_S = {"train: learngene": 2.0, "train: baseline": 2.0, "condense": 1.5, "demo: headline": 25.0}
POLL_S = 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from app.shared.config import default_ancestry

    p = argparse.ArgumentParser(prog="python -m bench.warm_start", description=__doc__.split("\n\n")[0])
    p.add_argument("--ancestry", default=None, help=f"ancestry checkpoint (default: {default_ancestry()})")
    p.add_argument("--repeat", type=int, default=1, help="rounds of warm and cold (default: 1)")
    p.add_argument("--only", action="append", choices=("train", "condense", "probe", "demo"), default=None,
                   help="measure only these jobs (repeatable; default: all)")
    p.add_argument("--timeout", type=float, default=300, help="give up on one job after this many seconds")
    add_common_args(p, "warm_start")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.ancestry = Path(args.ancestry or default_ancestry()).resolve()
    args.only = args.only or ["train", "condense", "probe", "demo"]
    return args


def jobs(ancestry: Path) -> dict[str, dict[str, Any]]:
    """name -> {spec, marks: what to time, each a predicate on (records so far, run folder)}."""
    from app.logic import demo
    from app.logic.commands import condense_argv, train_argv
    from learngene.jobs import JobSpec
    from learngene.models import layer_view, load_checkpoint, read_card

    n_layers = len(layer_view(load_checkpoint(ancestry)[0]))
    shipped = demo.shipped_result(ancestry, read_card(ancestry).sha256)
    layers = list(shipped.selected) if shipped is not None else list(range(max(1, n_layers // 2)))
    cka = condense_argv(ancestry, "cka", min(4, n_layers), {"device": "cpu", "cka_of": "update"})

    def epoch_of(model: str):
        return lambda recs, _d: any(r.get("kind") == "epoch" and r.get("model") == model for r in recs)

    def file(name: str):
        return lambda _r, d: (d / "outputs" / name).is_file()

    demo_spec = demo.train_spec(ancestry, layers, demo.shipped_run_id())
    return {
        "train": {"spec": JobSpec(argv=train_argv(ancestry, layers, RECIPE, TRAIN_TASK), kind="train"),
                  "marks": {"train: learngene": epoch_of("learngene"), "train: baseline": epoch_of("baseline")}},
        "condense": {"spec": JobSpec(argv=cka, kind="condense"), "marks": {"condense": file("similarity.json")}},
        "probe": {"spec": JobSpec(argv=["probe", "--ancestry", str(ancestry), "--tasks", str(PROBE_TASKS), "--device",
                                        "cpu", "--chosen", ",".join(map(str, layers))], kind="probe"),
                  "marks": {"probe": lambda recs, _d: any(r.get("kind") == "probe_model" for r in recs)}},
        "demo": {"spec": demo_spec, "marks": {"demo: first point": lambda recs, _d: any(r.get("kind") == "epoch"
                                                                                      for r in recs),
                                              "demo: headline": file("summary.json")}},
    }


def timed(mgr: Any, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Start the job (the click) and poll its folder until every mark is in; cancel what still runs."""
    t0 = time.perf_counter()
    run_id = mgr.start(job["spec"])
    seen: dict[str, float] = {}
    records: list[dict] = []
    offset, path = 0, mgr.run_dir(run_id)
    while len(seen) < len(job["marks"]):
        new, offset = mgr.read_metrics(run_id, offset)
        records += new
        now = time.perf_counter() - t0
        for name, reached in job["marks"].items():
            if name not in seen and reached(records, path):
                seen[name] = now
        info = mgr.get(run_id)
        if not info.live or now > timeout:
            break
        time.sleep(POLL_S)
    info = mgr.get(run_id)
    if info.live:
        mgr.cancel(run_id)
    info = mgr.wait(run_id, timeout=60)
    missing = [m for m in job["marks"] if m not in seen]
    if missing:
        raise SystemExit(f"{job['spec'].kind}: no {', '.join(missing)} ({info.state}: {info.reason})\n"
                         f"{info.log_tail or ''}")
    sim = read_json(path / "outputs" / "similarity.json") or {}  # a condense says how long its own work took
    return {"marks": seen, "start": info.status.get("start"), "refused": info.status.get("warm_refused"),
            "work_s": sim.get("elapsed_s")}


def managers(root: Path) -> dict[str, Any]:
    """A manager per mode, each on its own runs folder (one CPU slot more than the default, as the app's
    interactive jobs); the warm one's fork server loaded before any click."""
    from learngene.jobs import JobManager, default_max_cpu_jobs, warm

    out = {}
    for mode in ("warm", "cold"):
        out[mode] = JobManager(root / mode, max_cpu_jobs=default_max_cpu_jobs() + 1, warm_start=mode == "warm")
    t0 = time.perf_counter()
    out["warm"].warm_up()
    if not warm.wait_until_ready(root / "warm", 300):
        raise SystemExit(f"the fork server did not become ready: {warm.private_dir(root / 'warm') / warm.LOG_NAME}")
    out["server_s"] = time.perf_counter() - t0
    return out


def measure(args: argparse.Namespace, root: Path) -> tuple[list[dict[str, Any]], float]:
    mgrs = managers(root)
    todo = jobs(args.ancestry)
    if "condense" in args.only:  # an untimed first condense caches the pseudo-descendant
        timed(mgrs["cold"], todo["condense"], args.timeout)
    rows = []
    for rnd in range(args.repeat):
        for name in args.only:
            order = ("warm", "cold") if rnd % 2 == 0 else ("cold", "warm")
            result: dict[str, Any] = {"round": rnd + 1, "job": name, "load_before": round(os.getloadavg()[0], 1)}
            for mode in order:
                res = timed(mgrs[mode], todo[name], args.timeout)
                if res["start"] != mode:
                    raise SystemExit(f"{name}: the {mode} run started {res['start']} ({res['refused']})")
                result[mode] = res["marks"]
                result[f"{mode}_work_s"] = res["work_s"]
                print(f"round {rnd + 1} {name} {mode}: " + ", ".join(f"{k} {v:.2f} s" for k, v in res["marks"].items()),
                      flush=True)
            result["load_after"] = round(os.getloadavg()[0], 1)
            rows.append(result)
    return rows, mgrs["server_s"]


def _gaps(rows: list[dict[str, Any]]) -> str:
    """What stands between a missed goal and the measured warm time."""
    best = {}
    for r in rows:
        for mark, secs in r["warm"].items():
            best[mark] = min(secs, best.get(mark, secs))
    out = []
    work = [r["warm_work_s"] for r in rows if r["job"] == "condense" and r.get("warm_work_s")]
    if "condense" in best and work:
        out.append(f"condense: {best['condense']:.1f} s warm at best, of which the CKA itself (the job's own "
                   f"`elapsed_s`) took {min(work):.1f} s, so start-up is {best['condense'] - min(work):.1f} s")
    if "train: baseline" in best:
        out.append(f"train: the two models train in lockstep, so the baseline's first point "
                   f"({best['train: baseline']:.1f} s) follows the learngene descendant's first epoch "
                   f"({best['train: learngene']:.1f} s, start-up included)")
    if "demo: headline" in best:
        out.append(f"demo: the headline ({best['demo: headline']:.0f} s) is the demo's whole training; warm start "
                   f"saves the start-up only (first point {best['demo: first point']:.1f} s)")
    return "" if not out else "\n\nWhere the time goes: " + "; ".join(out) + "."


def report(rows: list[dict[str, Any]], server_s: float) -> str:
    table = []
    for r in rows:
        for mark, warm_s in r["warm"].items():
            cold_s = r["cold"][mark]
            goal = GOALS_S.get(mark)
            table.append([r["round"], mark, f"{warm_s:.1f}", f"{cold_s:.1f}", f"{cold_s / warm_s:.1f}x",
                          "-" if goal is None else f"{goal:g} s: {'met' if warm_s <= goal else 'NOT met'}",
                          f"{r['load_before']} / {r['load_after']}"])
    load = max(max(r["load_before"], r["load_after"]) for r in rows)
    busy = (f"**The machine was busy**: other processes kept the 1-minute load average up to {load} on its cores, "
            "so every time here is longer than on a quiet machine; warm and cold ran alternately, so their ratio "
            "is the fairer figure. " if load >= 1.0 else "")
    return (md_table(["round", "click to", "warm (s)", "cold (s)", "cold / warm", "goal (warm)",
                      "load avg before / after"], table)
            + f"\n\nSeconds from `JobManager.start` (the click) to the data. *Warm*: the worker is forked by the runs "
            f"folder's fork server (`learngene.jobs.forkserver`; it had loaded torch, timm, the library and the data "
            f"in {server_s:.1f} s before the clicks, as when the app starts it); *cold*: `python -m learngene ...` "
            "imports and loads everything itself. " + busy + "The train job trains the learngene descendant and its "
            "baseline in lockstep, one epoch of each in turn, so both curves start within an epoch of each other."
            + _gaps(rows))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="lg-bench-warm-"))
    try:
        rows, server_s = measure(args, root)
    finally:
        from learngene.jobs import warm

        warm.stop_server(root / "warm")
        kill_processes_naming(root, passes=2)
        shutil.rmtree(root, ignore_errors=True)
    text = report(rows, server_s)
    print("\n" + text)
    write_csv(f"{args.out}/warm_start.csv", [{"round": r["round"], "job": r["job"], "mode": mode, "mark": k,
                                              "seconds": v, "load_before": r["load_before"],
                                              "load_after": r["load_after"]}
                                             for r in rows for mode in ("warm", "cold") for k, v in r[mode].items()])
    info = machine_info()
    finish(args, "warm-start-cpu", section("warm-start-cpu", "Warm start: click to first point (cpu)", text,
                                           command_line("bench.warm_start", argv), info))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
